"""The busybox test image: no registry can be reached here, so tests import one from the
static busybox binary of Debian's busybox-static package.

``python -m tests.dockerimage unix:///path/docker.sock`` imports it into that daemon
(used by hack/dockerd); the fixtures call ``ensure_image``.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import docker

IMAGE = "dockzone-test/busybox:latest"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "true", "false", "cat", "echo", "nc", "httpd", "nslookup", "wget")


def rootfs_tar() -> bytes:
    """A root file system holding busybox and a few applet links, as a tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def ensure_image(url: str) -> str:
    """Import the image into the daemon at ``url`` unless it is there; returns its name."""
    client = docker.DockerClient(base_url=url, version="auto", timeout=60)
    try:
        try:
            client.images.get(IMAGE)
        except docker.errors.ImageNotFound:
            repository, tag = IMAGE.split(":")
            client.api.import_image_from_data(
                rootfs_tar(), repository=repository, tag=tag, changes=['CMD ["sleep", "3600"]']
            )
    finally:
        client.close()
    return IMAGE


if __name__ == "__main__":
    print(ensure_image(sys.argv[1]))
