"""Where the Clipper services run and how to start and stop them."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
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

    def stop_all(self, remove_data: bool = False) -> None:
        raise ClipperException(f"{type(self).__name__} cannot stop Clipper")


# What a fresh start removes from a data directory: everything `clipper up` keeps there
# except credentials (tokens, app-keys), which a new system would need again.
STATE_DIRECTORIES = ("registry", "artifacts", "logs", "run")

_NO_CLI = (
    "cannot find the Clipper server to start: set CLIPPER_REPO to a Clipper checkout (the directory holding "
    "cli/clipper.mjs, with `npm install` run there), or put its `clipper` command on PATH (`npm link` in the "
    "checkout), or pass LocalContainerManager(cli_path=<checkout>/cli/clipper.mjs); to use a Clipper that is "
    "already running, call ClipperConnection.connect() instead of start_clipper()"
)


def find_repo_root() -> Path:
    """$CLIPPER_REPO, else the nearest directory above this file holding
    cli/clipper.mjs (the SDK used from a checkout: an editable install or
    PYTHONPATH). An SDK installed from its wheel has none above it."""
    configured = os.environ.get("CLIPPER_REPO")
    if configured:
        root = Path(configured).expanduser()
        if not (root / "cli" / "clipper.mjs").is_file():
            raise ClipperException(
                f"CLIPPER_REPO is {configured!r}, which holds no cli/clipper.mjs: set it to a Clipper checkout"
            )
        return root
    for directory in Path(__file__).resolve().parents:
        if (directory / "cli" / "clipper.mjs").is_file():
            return directory
    raise ClipperException(_NO_CLI)


def find_cli(node: str = "node") -> list[str]:
    """The command that runs the `clipper` CLI: `node <checkout>/cli/clipper.mjs`
    for $CLIPPER_REPO or a checkout above this package, else a `clipper`
    command on PATH. Raises ClipperException saying what to do otherwise."""
    try:
        return [node, str(find_repo_root() / "cli" / "clipper.mjs")]
    except ClipperException:
        if os.environ.get("CLIPPER_REPO"):
            raise
    on_path = shutil.which("clipper")
    if on_path is not None:
        return [on_path]
    raise ClipperException(_NO_CLI)


def clipper_home() -> Path:
    """Where Clipper keeps its state on this machine: $CLIPPER_HOME, else ~/.clipper (as the CLI)."""
    configured = os.environ.get("CLIPPER_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".clipper"


def default_data_dir() -> Path:
    """Where `clipper up` keeps the default cluster's state when given no --data-dir:
    $CLIPPER_DATA_DIR, else ~/.clipper/data ($CLIPPER_HOME/data)."""
    configured = os.environ.get("CLIPPER_DATA_DIR")
    return Path(configured).expanduser() if configured else clipper_home() / "data"


DEFAULT_CLUSTER = "default"

# A DNS label (RFC 1123), as the CLI checks it (cli/clusters.ts): the name goes into Kubernetes names and labels.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_cluster_name(name: str) -> str:
    """The name, or ClipperException saying what a cluster name may be."""
    if not isinstance(name, str) or _CLUSTER_NAME.fullmatch(name) is None:
        raise ClipperException(
            f"cluster name {name!r} is not valid: use 1 to 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (a DNS label)"
        )
    return name


def cluster_data_dir(name: str) -> Path:
    """A cluster's data directory: the default cluster's default_data_dir(), a named one's
    $CLIPPER_HOME/clusters/NAME (where `clipper up --cluster NAME` keeps it)."""
    return default_data_dir() if name == DEFAULT_CLUSTER else clipper_home() / "clusters" / validate_cluster_name(name)


def recorded_services(data_dir: Path) -> dict[str, str]:
    """host:port of each service `clipper up` recorded in data_dir/run/services.json
    (empty when there is none or it cannot be read)."""
    try:
        with open(data_dir / "run" / "services.json", encoding="utf-8") as f:
            services = json.load(f).get("services", [])
    except (OSError, ValueError, AttributeError):
        return {}
    addresses: dict[str, str] = {}
    for service in services if isinstance(services, list) else []:
        if isinstance(service, dict) and isinstance(service.get("name"), str) and isinstance(service.get("port"), int):
            addresses[service["name"]] = f"{_connect_host(str(service.get('host', '127.0.0.1')))}:{service['port']}"
    return addresses


def _connect_host(host: str) -> str:
    """The address a client uses for a service bound on host (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class LocalContainerManager(ContainerManager):
    """Clipper on this machine, started and stopped with the `clipper` CLI
    (`clipper up|down`, found by find_cli: $CLIPPER_REPO, the checkout this
    package is in, or `clipper` on PATH).

    State lives in the data directory (`data_dir`, default $CLIPPER_DATA_DIR
    or ~/.clipper/data) and outlives `stop_all()`: applications, models,
    links and artifacts are there again after the next `start_clipper()`, and
    the models' replicas start again. `stop_all(remove_data=True)` starts the
    next run clean.

    `cluster_name` (Clipper's argument; default $CLIPPER_CLUSTER, else
    "default") picks one of several systems on this machine: "default" is
    the one above, on ports 1337-1341; any other name (a DNS label) is
    `clipper up --cluster NAME`, with its own data directory ($CLIPPER_HOME
    or ~/.clipper, then clusters/NAME) and its own ports, picked
    free by its first start and found again by name: connect() and stop_all()
    reach that system only. A port given here wins over the recorded one."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        gateway_port: int | None = None,
        registry_port: int | None = None,
        router_port: int | None = None,
        container_manager_port: int | None = None,
        host: str = "127.0.0.1",
        cli_path: str | os.PathLike[str] | None = None,
        node: str = "node",
        timeout_seconds: float = 180.0,
        cluster_name: str | None = None,
    ) -> None:
        super().__init__(
            host,
            DEFAULT_GATEWAY_PORT if gateway_port is None else gateway_port,
            DEFAULT_REGISTRY_PORT if registry_port is None else registry_port,
            DEFAULT_ROUTER_PORT if router_port is None else router_port,
            DEFAULT_CONTAINER_MANAGER_PORT if container_manager_port is None else container_manager_port,
        )
        self.cluster_name = validate_cluster_name(
            cluster_name if cluster_name is not None else os.environ.get("CLIPPER_CLUSTER") or DEFAULT_CLUSTER
        )
        # The ports given here, by `clipper up` flag; the others come from what `clipper up` recorded.
        self._given_ports = {
            flag: int(port)
            for flag, port in (
                ("gateway-port", gateway_port),
                ("registry-port", registry_port),
                ("router-port", router_port),
                ("container-manager-port", container_manager_port),
            )
            if port is not None
        }
        self.data_dir = str(data_dir) if data_dir is not None else None
        self._cli_path = str(cli_path) if cli_path is not None else None
        self.node = node
        self.timeout_seconds = timeout_seconds
        self._cli: list[str] | None = None

    def cli_command(self) -> list[str]:
        """The argv that runs the CLI, before its subcommand."""
        if self._cli is None:
            self._cli = [self.node, self._cli_path] if self._cli_path is not None else find_cli(self.node)
        return list(self._cli)

    @property
    def data_directory(self) -> Path:
        """The data directory `clipper up` uses: data_dir, else the cluster's (cluster_data_dir())."""
        return Path(self.data_dir).expanduser() if self.data_dir is not None else cluster_data_dir(self.cluster_name)

    def _address(self, service: str, flag: str, default_port: int) -> str:
        """A port given here; else what `clipper up` recorded; else, for the default cluster, its default port."""
        if flag in self._given_ports:
            return f"{self.host}:{self._given_ports[flag]}"
        recorded = recorded_services(self.data_directory).get(service)
        if recorded is not None:
            return recorded
        if self.cluster_name == DEFAULT_CLUSTER:
            return f"{self.host}:{default_port}"
        raise ClipperException(
            f"Clipper cluster {self.cluster_name!r} is not running (no {service} recorded in "
            f"{self.data_directory / 'run' / 'services.json'}): start_clipper() starts it"
        )

    @property
    def registry_address(self) -> str:
        return self._address("registry", "registry-port", DEFAULT_REGISTRY_PORT)

    @property
    def container_manager_address(self) -> str:
        return self._address("container-manager", "container-manager-port", DEFAULT_CONTAINER_MANAGER_PORT)

    @property
    def query_address(self) -> str:
        return self._address("gateway", "gateway-port", DEFAULT_GATEWAY_PORT)

    def _system_flags(self) -> list[str]:
        """Which system: the cluster (when named) and the data directory (when given)."""
        # Also "default" when $CLIPPER_CLUSTER names another, which the CLI would take.
        named = self.cluster_name != DEFAULT_CLUSTER or os.environ.get("CLIPPER_CLUSTER")
        cluster = ["--cluster", self.cluster_name] if named else []
        return [*cluster, *(["--data-dir", self.data_dir] if self.data_dir is not None else [])]

    def up_command(self) -> list[str]:
        ports = [arg for flag, port in self._given_ports.items() for arg in (f"--{flag}", str(port))]
        return [*self.cli_command(), "up", *self._system_flags(), *ports]

    def down_command(self) -> list[str]:
        return [*self.cli_command(), "down", *self._system_flags()]

    def service_environment(self) -> dict[str, str]:
        """Variables added to `clipper up`'s environment (the services read their settings from it)."""
        return {}

    def _run(self, command: list[str], subcommand: str, what: str) -> None:
        log.info("running %s", " ".join(command))
        try:
            completed = subprocess.run(
                command,
                env={**os.environ, **self.service_environment()},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
            )
        except FileNotFoundError as error:
            raise ClipperException(f"cannot run {command[0]!r} to {what}: {error}") from error
        except subprocess.TimeoutExpired as error:
            raise ClipperException(
                f"`clipper {subcommand}` did not finish within {self.timeout_seconds:g} s"
            ) from error
        if completed.stdout.strip():
            log.info("%s", completed.stdout.strip())
        if completed.returncode != 0:
            message = completed.stderr.strip() or completed.stdout.strip()
            raise ClipperException(f"`clipper {subcommand}` failed (exit code {completed.returncode}): {message}")

    def start_clipper(self) -> None:
        """Returns once `clipper up` reports every service healthy."""
        self._run(self.up_command(), "up", "start Clipper")

    def stop_all(self, remove_data: bool = False) -> None:
        """`clipper down`: stops the services and every model replica. The data
        directory is kept (see the class) unless `remove_data`: then its state
        (registry/, artifacts/, logs/, run/) is deleted too, and the next
        start_clipper() starts with no applications or models. Credentials kept
        there (tokens, app-keys) stay."""
        self._run(self.down_command(), "down", "stop Clipper")
        if remove_data:
            self.remove_data()

    def remove_data(self) -> None:
        """Deletes the data directory's state (STATE_DIRECTORIES); call with Clipper stopped."""
        root = self.data_directory
        for name in STATE_DIRECTORIES:
            shutil.rmtree(root / name, ignore_errors=True)
        log.info("removed Clipper's state from %s", root)
