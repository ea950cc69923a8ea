# The dockzone image: `dockzone run` on a Docker host, `dockzone operator` in Kubernetes.
#   docker build -t dockzone .
# Runs as the unprivileged user dockzone (uid 10001). To read the Docker socket for the
# Docker source, mount it read-only and add the socket's group:
#   docker run -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" dockzone run ...
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_STATE_HOME=/var/lib

WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY dnsserver ./dnsserver
COPY templates ./templates
RUN pip install . \
    && rm -rf /src \
    && groupadd --system --gid 10001 dockzone \
    && useradd --system --uid 10001 --gid dockzone --home-dir /var/lib/dockzone \
       --shell /usr/sbin/nologin dockzone \
    && mkdir -p /var/lib/dockzone/definitions /var/lib/dockzone/zones \
    && chown -R dockzone:dockzone /var/lib/dockzone

WORKDIR /var/lib/dockzone
USER 10001:10001
VOLUME ["/var/lib/dockzone"]
# DNS on an unprivileged port; publish it as 53 (docker run -p 53:5354/udp).
EXPOSE 5354/udp 5354/tcp
ENTRYPOINT ["dockzone"]
CMD ["run", "--dns", "0.0.0.0:5354"]
