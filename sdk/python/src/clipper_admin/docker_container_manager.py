"""Clipper on this machine with each model replica in its own container (Docker or Podman)."""

from __future__ import annotations

import os
from pathlib import Path

from .container_manager import LocalContainerManager
from .exceptions import ClipperException

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_RUNTIME_IMAGE = "localhost/clipper-python-runtime:latest"


def default_docker_socket() -> str:
    """$DOCKER_HOST when it names a unix socket, else Docker's own socket."""
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else DEFAULT_DOCKER_SOCKET


class DockerContainerManager(LocalContainerManager):
    """Clipper's services on this machine (started and stopped with the
    `clipper` CLI, like LocalContainerManager), with the container-manager's
    container backend: each model replica runs as one container of
    `image` through the Docker Engine API at `docker_socket` (Docker's
    socket, or Podman's `podman system service` socket), on the host's
    network, with the given memory, CPU and pids limits. The services
    themselves stay processes, and everything else (data directory, ports,
    stop_all, and `cluster_name`, which also labels the containers) is
    LocalContainerManager's. docs/containers.md has the details,
    and how to make the image."""

    def __init__(
        self,
        docker_socket: str | os.PathLike[str] | None = None,
        image: str = DEFAULT_RUNTIME_IMAGE,
        memory_limit_bytes: int = 0,
        cpus: float = 0.0,
        pids_limit: int = 1024,
        cluster_name: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        gateway_port: int | None = None,
        registry_port: int | None = None,
        router_port: int | None = None,
        container_manager_port: int | None = None,
        host: str = "127.0.0.1",
        cli_path: str | os.PathLike[str] | None = None,
        node: str = "node",
        timeout_seconds: float = 180.0,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            gateway_port=gateway_port,
            registry_port=registry_port,
            router_port=router_port,
            container_manager_port=container_manager_port,
            host=host,
            cli_path=cli_path,
            node=node,
            timeout_seconds=timeout_seconds,
            cluster_name=cluster_name,
        )
        if memory_limit_bytes < 0 or cpus < 0 or pids_limit < 0:
            raise ClipperException(
                "DockerContainerManager: memory_limit_bytes, cpus and pids_limit must be 0 (no limit) or more, "
                f"got {memory_limit_bytes}, {cpus}, {pids_limit}"
            )
        if image == "":
            raise ClipperException("DockerContainerManager: image must name the model runtime image")
        self.docker_socket = str(docker_socket) if docker_socket is not None else default_docker_socket()
        self.image = image
        self.memory_limit_bytes = int(memory_limit_bytes)
        self.cpus = float(cpus)
        self.pids_limit = int(pids_limit)

    def service_environment(self) -> dict[str, str]:
        return {
            "CLIPPER_BACKEND": "docker",
            "CLIPPER_DOCKER_SOCKET": self.docker_socket,
            "CLIPPER_MODEL_IMAGE": self.image,
            "CLIPPER_REPLICA_MEMORY_LIMIT_BYTES": str(self.memory_limit_bytes),
            "CLIPPER_REPLICA_CPUS": f"{self.cpus:g}",
            "CLIPPER_REPLICA_PIDS_LIMIT": str(self.pids_limit),
            "CLIPPER_CLUSTER_NAME": self.cluster_name,
        }

    def start_clipper(self) -> None:
        """`clipper up` with the container backend; fails at once, naming the socket, when no engine listens there."""
        if not Path(self.docker_socket).exists():
            raise ClipperException(
                f"no Docker Engine API socket at {self.docker_socket}: start Docker, or Podman's service "
                "(podman system service --time=0 unix://PATH), and pass DockerContainerManager(docker_socket=PATH)"
            )
        super().start_clipper()
