"""Where the Clipper services run and how to start and stop them."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from .exceptions import ClipperException

log = logging.getLogger("clipper_admin")

DEFAULT_GATEWAY_PORT = 1337
DEFAULT_REGISTRY_PORT = 1338
DEFAULT_ROUTER_PORT = 1339
DEFAULT_CONTAINER_MANAGER_PORT = 1340


class ContainerManager:
    """The addresses of a running Clipper; subclasses can start and stop it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        gateway_port: int = DEFAULT_GATEWAY_PORT,
        registry_port: int = DEFAULT_REGISTRY_PORT,
        router_port: int = DEFAULT_ROUTER_PORT,
        container_manager_port: int = DEFAULT_CONTAINER_MANAGER_PORT,
    ) -> None:
        self.host = host
        self.gateway_port = int(gateway_port)
        self.registry_port = int(registry_port)
        self.router_port = int(router_port)
        self.container_manager_port = int(container_manager_port)

    @property
    def registry_address(self) -> str:
        return f"{self.host}:{self.registry_port}"

    @property
    def container_manager_address(self) -> str:
        return f"{self.host}:{self.container_manager_port}"

    @property
    def query_address(self) -> str:
        return f"{self.host}:{self.gateway_port}"

    def start_clipper(self) -> None:
        raise ClipperException(f"{type(self).__name__} cannot start Clipper; connect() to a running one")

    def stop_all(self) -> None:
        raise ClipperException(f"{type(self).__name__} cannot stop Clipper")


def find_repo_root() -> Path:
    """$CLIPPER_REPO, else the nearest directory above this file holding cli/clipper.mjs."""
    configured = os.environ.get("CLIPPER_REPO")
    if configured:
        return Path(configured)
    for directory in Path(__file__).resolve().parents:
        if (directory / "cli" / "clipper.mjs").is_file():
            return directory
    raise ClipperException("cannot find the clipper CLI: set CLIPPER_REPO to the repository holding cli/clipper.mjs")


class LocalContainerManager(ContainerManager):
    """Clipper on this machine, started and stopped with the `clipper` CLI
    (`node <repo>/cli/clipper.mjs up|down`)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        gateway_port: int = DEFAULT_GATEWAY_PORT,
        registry_port: int = DEFAULT_REGISTRY_PORT,
        router_port: int = DEFAULT_ROUTER_PORT,
        container_manager_port: int = DEFAULT_CONTAINER_MANAGER_PORT,
        host: str = "127.0.0.1",
        cli_path: str | os.PathLike[str] | None = None,
        node: str = "node",
        timeout_seconds: float = 180.0,
    ) -> None:
        super().__init__(host, gateway_port, registry_port, router_port, container_manager_port)
        self.data_dir = str(data_dir) if data_dir is not None else None
        self._cli_path = str(cli_path) if cli_path is not None else None
        self.node = node
        self.timeout_seconds = timeout_seconds

    def cli_path(self) -> str:
        if self._cli_path is None:
            self._cli_path = str(find_repo_root() / "cli" / "clipper.mjs")
        return self._cli_path

    def _data_dir_flags(self) -> list[str]:
        return ["--data-dir", self.data_dir] if self.data_dir is not None else []

    def up_command(self) -> list[str]:
        return [
            self.node,
            self.cli_path(),
            "up",
            *self._data_dir_flags(),
            "--gateway-port",
            str(self.gateway_port),
            "--registry-port",
            str(self.registry_port),
            "--router-port",
            str(self.router_port),
            "--container-manager-port",
            str(self.container_manager_port),
        ]

    def down_command(self) -> list[str]:
        return [self.node, self.cli_path(), "down", *self._data_dir_flags()]

    def _run(self, command: list[str], what: str) -> None:
        log.info("running %s", " ".join(command))
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
            )
        except FileNotFoundError as error:
            raise ClipperException(f"cannot run {command[0]!r} to {what}: {error}") from error
        except subprocess.TimeoutExpired as error:
            raise ClipperException(
                f"`clipper {command[2]}` did not finish within {self.timeout_seconds:g} s"
            ) from error
        if completed.stdout.strip():
            log.info("%s", completed.stdout.strip())
        if completed.returncode != 0:
            message = completed.stderr.strip() or completed.stdout.strip()
            raise ClipperException(f"`clipper {command[2]}` failed (exit code {completed.returncode}): {message}")

    def start_clipper(self) -> None:
        """Returns once `clipper up` reports every service healthy."""
        self._run(self.up_command(), "start Clipper")

    def stop_all(self) -> None:
        self._run(self.down_command(), "stop Clipper")
