# The dockzone image: `dockzone run` on a Docker host, `dockzone operator` in Kubernetes.
#   docker build -t dockzone .
# Runs as the unprivileged user dockzone (uid 10001). To read the Docker socket for the
# Docker source, mount it read-only and add the socket's group:
#   docker run -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" dockzone run ...

# The wheel is built where a C compiler is (the full image): it carries dnsserver._udpbatch,
# the DNS server's batched UDP I/O (recvmmsg/sendmmsg). The slim image installs it.
FROM python:3.12 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY reconciler ./reconciler
COPY dnsserver ./dnsserver
COPY templates ./templates
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); sys.exit(not any(n.startswith('dnsserver/_udpbatch') and n.endswith('.so') for n in names))"

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_STATE_HOME=/var/lib

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
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
