"""Several Clipper systems on one machine from Python: LocalContainerManager(cluster_name=...)
is `clipper up --cluster NAME`, found again by name. The checks of names, flags and
addresses run always; the two real systems with CLIPPER_E2E=1 (as .ci/run sets it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_e2e_quickstart import feature_sum, query_until_answered

from clipper_admin import ClipperConnection, ClipperException, DockerContainerManager, LocalContainerManager
from clipper_admin.container_manager import cluster_data_dir

E2E = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")


@pytest.fixture
def clipper_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "clipper-home"
    monkeypatch.setenv("CLIPPER_HOME", str(home))
    monkeypatch.delenv("CLIPPER_DATA_DIR", raising=False)
    monkeypatch.delenv("CLIPPER_CLUSTER", raising=False)
    return home


def write_services(data_dir: Path, ports: dict[str, int]) -> None:
    (data_dir / "run").mkdir(parents=True)
    services = [{"name": name, "host": "127.0.0.1", "port": port} for name, port in ports.items()]
    (data_dir / "run" / "services.json").write_text(json.dumps({"version": 1, "services": services}))


@pytest.mark.parametrize("name", ["Team_A", "-a", "a-", "a.b", "", "x" * 64])
def test_a_cluster_name_that_is_not_a_dns_label_is_refused(name, clipper_home):
    with pytest.raises(ClipperException, match="is not valid: use 1 to 63 lowercase letters, digits and '-'"):
        LocalContainerManager(cluster_name=name)
    with pytest.raises(ClipperException, match="is not valid"):
        DockerContainerManager(cluster_name=name)


def test_a_named_cluster_has_its_own_data_dir_and_its_recorded_ports(clipper_home):
    manager = LocalContainerManager(cluster_name="team-a", cli_path="/x/clipper.mjs")
    assert manager.data_directory == clipper_home / "clusters" / "team-a" == cluster_data_dir("team-a")
    assert manager.up_command() == ["node", "/x/clipper.mjs", "up", "--cluster", "team-a"]
    assert manager.down_command() == ["node", "/x/clipper.mjs", "down", "--cluster", "team-a"]
    # Not up: no address at all, rather than the default cluster's ports.
    with pytest.raises(ClipperException, match="cluster 'team-a' is not running .* start_clipper\\(\\) starts it"):
        _ = manager.registry_address
    with pytest.raises(ClipperException, match="cluster 'team-a' is not running"):
        ClipperConnection(manager).connect()
    write_services(manager.data_directory, {"registry": 21338, "container-manager": 21340, "gateway": 21337})
    assert (manager.registry_address, manager.container_manager_address, manager.query_address) == (
        "127.0.0.1:21338",
        "127.0.0.1:21340",
        "127.0.0.1:21337",
    )
    # A port given here wins, and goes to `clipper up`.
    pinned = LocalContainerManager(cluster_name="team-a", gateway_port=8080, cli_path="/x/clipper.mjs")
    assert pinned.query_address == "127.0.0.1:8080"
    assert pinned.up_command()[2:] == ["up", "--cluster", "team-a", "--gateway-port", "8080"]


def test_clipper_cluster_in_the_environment_names_the_cluster_as_for_the_cli(clipper_home, monkeypatch):
    monkeypatch.setenv("CLIPPER_CLUSTER", "team-c")
    assert LocalContainerManager(cli_path="/x/clipper.mjs").up_command()[2:] == ["up", "--cluster", "team-c"]
    # Named here, "default" too is passed on, so the CLI does not take the environment's instead.
    assert LocalContainerManager(cluster_name="default", cli_path="/x/c.mjs").down_command()[2:] == [
        "down",
        "--cluster",
        "default",
    ]


def test_the_default_cluster_keeps_its_paths_and_ports(clipper_home):
    manager = LocalContainerManager(cli_path="/x/clipper.mjs")
    assert manager.cluster_name == "default"
    assert manager.data_directory == clipper_home / "data"
    assert manager.up_command()[2:] == ["up"]
    assert (manager.registry_address, manager.query_address) == ("127.0.0.1:1338", "127.0.0.1:1337")
    # The Docker manager's cluster_name is the same thing: its system, and its containers' label.
    docker = DockerContainerManager(cluster_name="team-b", cli_path="/x/clipper.mjs")
    assert docker.up_command()[2:] == ["up", "--cluster", "team-b"]
    assert docker.service_environment()["CLIPPER_CLUSTER_NAME"] == "team-b"


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recorded_pids(data_dir: Path) -> list[int]:
    """The services' pids from services.json and the replicas' from the container-manager's ledger."""
    services = json.loads((data_dir / "run" / "services.json").read_text())["services"]
    ledger = data_dir / "run" / "replica-processes.json"
    replicas = json.loads(ledger.read_text()).values() if ledger.exists() else []
    return [s["pid"] for s in services] + [r["pid"] for r in replicas]


@E2E
def test_two_named_systems_side_by_side_and_stop_all_stops_only_its_own(clipper_home):
    from clipper_admin.deployers import python as python_deployer

    first = ClipperConnection(LocalContainerManager(cluster_name="py-a"))
    second = ClipperConnection(LocalContainerManager(cluster_name="py-b"))
    first.start_clipper()
    try:
        second.start_clipper()
        addresses = {first.cm.registry_address, second.cm.registry_address, first.get_query_addr()}
        assert len(addresses) == 3 and "127.0.0.1:1338" not in addresses and "127.0.0.1:1337" not in addresses
        first.register_application(name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=2000000)
        python_deployer.deploy_python_closure(
            first, name="sum-model", version=1, input_type="doubles", func=feature_sum
        )
        first.link_model_to_app(app_name="hello-world", model_name="sum-model")
        assert second.get_all_apps() == []

        # Found by name alone, as Clipper's cluster_name did: another connection, nothing but the name.
        by_name = ClipperConnection(LocalContainerManager(cluster_name="py-a"))
        by_name.connect()
        assert by_name.get_all_apps() == ["hello-world"]
        answer = query_until_answered(by_name.get_query_addr(), "hello-world", [1.0, 2.0, 3.0])
        assert float(answer["output"]) == 6.0
        by_name.close()

        pids = recorded_pids(first.cm.data_directory)
        assert len(pids) >= 4
        first.stop_all()
        assert [pid for pid in pids if running(pid)] == []
        # The other system is untouched.
        second.connect()
        assert second.get_all_apps() == []
    finally:
        first.stop_all()
        second.stop_all()
