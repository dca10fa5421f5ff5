"""clipper_admin against in-test fake registry and container-manager servers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys

import grpc
import numpy as np
import pytest
from fakes import FakeClipper

from clipper.common.v1 import data_pb2
from clipper.v1 import resources_pb2
from clipper_admin import ClipperConnection, ClipperException, ContainerManager, LocalContainerManager
from clipper_admin.container_manager import find_cli, find_repo_root
from clipper_admin.deployers import python as python_deployer
from clipper_admin.deployers import sklearn as sklearn_deployer
from clipper_runtime import load_artifact


@pytest.fixture
def fake():
    clipper = FakeClipper()
    yield clipper
    clipper.stop()


@pytest.fixture
def conn(fake):
    connection = ClipperConnection(
        ContainerManager(registry_port=fake.registry_port, container_manager_port=fake.container_manager_port)
    )
    connection.connect(timeout_seconds=5)
    yield connection
    connection.close()


def requests_of(servicer, method):
    return [request for name, request in servicer.requests if name == method]


def test_register_application_builds_the_request(conn, fake):
    conn.register_application(name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=100000)
    [request] = requests_of(fake.registry, "CreateApplication")
    assert request.name == "hello-world"
    assert request.input_type == data_pb2.INPUT_TYPE_DOUBLES
    assert (request.default_output, request.slo_micros) == ("-1.0", 100000)
    assert conn.get_all_apps() == ["hello-world"]
    assert conn.get_all_apps(verbose=True) == [
        {
            "name": "hello-world",
            "input_type": "doubles",
            "default_output": "-1.0",
            "latency_slo_micros": 100000,
            "linked_models": [],
            "description": "",
            "selection_policy": "single",
        }
    ]
    assert conn.get_app_info("hello-world")["latency_slo_micros"] == 100000
    assert conn.get_app_info("nope") is None


def test_server_errors_become_clipper_exceptions_with_the_servers_message(conn):
    conn.register_application("app", "strings", "none", 1000)
    with pytest.raises(ClipperException) as caught:
        conn.register_application("app", "strings", "none", 1000)
    assert str(caught.value) == 'application "app" already exists'
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(ClipperException, match='application "ghost" not found'):
        conn.get_linked_models("ghost")


def test_invalid_input_type_fails_before_any_call(conn, fake):
    with pytest.raises(ClipperException, match="invalid input type 'matrix'"):
        conn.register_application("app", "matrix", "none", 1000)
    assert requests_of(fake.registry, "CreateApplication") == []


def test_calls_before_connect_raise():
    connection = ClipperConnection(ContainerManager())
    with pytest.raises(ClipperException, match="Not connected"):
        connection.get_all_apps()


def test_connect_to_nothing_fails_with_the_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = ClipperConnection(ContainerManager(registry_port=port))
    with pytest.raises(ClipperException, match=f"cannot reach the Clipper registry at 127.0.0.1:{port}"):
        connection.connect(timeout_seconds=1)
    assert not connection.connected


def test_deploy_python_closure_uploads_in_chunks_and_deploys(conn, fake):
    weights = np.arange(300_000, dtype=np.float64)  # 2.4 MB: three chunks

    def predict(xs):
        return [str(float(np.dot(x, weights[: len(x)]))) for x in xs]

    python_deployer.deploy_python_closure(
        conn,
        name="dot-model",
        version=1,
        input_type="doubles",
        func=predict,
        num_replicas=2,
        pkgs_to_install=["requests==2.0"],
        labels={"team": "a"},
    )
    [header] = requests_of(fake.container_manager, "UploadArtifact")
    [deploy] = requests_of(fake.container_manager, "DeployModel")
    assert fake.container_manager.chunk_sizes[:2] == [1024 * 1024, 1024 * 1024]
    assert len(fake.container_manager.chunk_sizes) == 3
    data = fake.container_manager.artifacts[header.header.sha256]
    assert hashlib.sha256(data).hexdigest() == header.header.sha256 and len(data) == header.header.size_bytes

    model = deploy.model
    assert (model.name, model.version, model.input_type) == ("dot-model", "1", data_pb2.INPUT_TYPE_DOUBLES)
    assert (model.desired_replicas, model.max_batch_size, dict(model.labels)) == (2, 0, {"team": "a"})
    assert deploy.set_current
    runtime = model.runtime.python_closure
    assert runtime.artifact_digest == header.header.sha256
    assert runtime.python_version == "3.11"
    assert f"numpy=={np.__version__}" in runtime.packages and "requests==2.0" in runtime.packages

    # Replicas run with this very interpreter (the data scientist's environment), by its own path.
    assert runtime.interpreter == os.path.abspath(sys.executable)

    closure, metadata = load_artifact(data)
    assert metadata.python_version == "3.11"
    assert closure([np.array([1.0, 2.0])]) == predict([np.array([1.0, 2.0])])


def test_deploy_python_closure_with_another_interpreter_or_the_container_managers(conn, fake):
    python_deployer.deploy_python_closure(conn, "a", 1, "doubles", lambda xs: xs, interpreter="/opt/env/bin/python")
    python_deployer.deploy_python_closure(conn, "b", 1, "doubles", lambda xs: xs, interpreter="")
    deploys = requests_of(fake.container_manager, "DeployModel")
    assert [d.model.runtime.python_closure.interpreter for d in deploys] == ["/opt/env/bin/python", ""]
    with pytest.raises(ClipperException, match="interpreter must be an absolute path"):
        python_deployer.deploy_python_closure(conn, "c", 1, "doubles", lambda xs: xs, interpreter="python3")


def test_a_failed_deploy_leads_with_the_runners_reason_then_the_replicas_log(conn):
    with pytest.raises(ClipperException) as caught:
        python_deployer.deploy_python_closure(conn, "needs-sklearn", 1, "doubles", lambda xs: xs)
    first, *rest = str(caught.value).splitlines()
    assert first == (
        "deploy of needs-sklearn:1 failed: cannot load the closure: it needs the module 'sklearn', "
        "which the interpreter /env/bin/python (Python 3.11) cannot import"
    )
    assert rest[0].startswith("replica 1a2b of model needs-sklearn:1 failed to start: exited with code 3")
    assert rest[-1].endswith("manager exited with code 3")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_deploy_failure_carries_the_servers_message(conn):
    with pytest.raises(ClipperException) as caught:
        python_deployer.deploy_python_closure(conn, "broken", 1, "doubles", lambda xs: xs)
    assert str(caught.value) == "replica broken:1-0 exited with code 1: ModuleNotFoundError: No module named 'torch'"
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_deploy_model_with_a_command_runtime(conn, fake):
    conn.deploy_model("cmd", "v2", "strings", ["python3", "serve.py"], batch_size=16)
    [deploy] = requests_of(fake.container_manager, "DeployModel")
    assert list(deploy.model.runtime.command.argv) == ["python3", "serve.py"]
    assert deploy.model.max_batch_size == 16
    with pytest.raises(ClipperException, match="runtime must be"):
        conn.deploy_model("cmd", "v3", "strings", 42)


def test_resources_reach_the_model_from_every_deployer(conn, fake):
    resources = {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"nvidia.com/gpu": "1"}}
    python_deployer.deploy_python_closure(conn, "res", 1, "doubles", lambda xs: ["a"] * len(xs), resources=resources)
    conn.deploy_model("res-cmd", 1, "doubles", ["python3", "serve.py"], resources={"limits": {"memory": "1Gi"}})
    sklearn_deployer.deploy_sklearn_model(conn, "res-sk", 1, "doubles", _fitted_regression(), resources=resources)
    closure, command, framework = (d.model.resources for d in requests_of(fake.container_manager, "DeployModel"))
    for deployed in (closure, framework):
        assert dict(deployed.requests) == {"cpu": "500m", "memory": "256Mi"}
        assert dict(deployed.limits) == {"nvidia.com/gpu": "1"}
    assert (dict(command.requests), dict(command.limits)) == ({}, {"memory": "1Gi"})


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ({"cpu": "1"}, "keys requests and/or limits"),
        ({"requests": {"cpu": 1}}, r'resources\["requests"\] must map resource names to quantity strings'),
        ("1 cpu", "keys requests and/or limits"),
    ],
)
def test_malformed_resources_are_refused_naming_the_problem(conn, fake, resources, problem):
    with pytest.raises(ClipperException, match=problem):
        conn.deploy_model("bad", 1, "doubles", ["python3", "serve.py"], resources=resources)
    assert requests_of(fake.container_manager, "DeployModel") == []


def _fitted_regression():
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 2.0]))


def test_models_links_versions_and_replicas(conn, fake):
    conn.register_application("app", "doubles", "-1", 1000)
    python_deployer.deploy_python_closure(conn, "m", 1, "doubles", lambda xs: ["a"] * len(xs))
    python_deployer.deploy_python_closure(conn, "m", 2, "doubles", lambda xs: ["b"] * len(xs), set_current=False)
    conn.link_model_to_app(app_name="app", model_name="m")
    assert conn.get_linked_models("app") == ["m"]
    with pytest.raises(ClipperException, match='model "nope" not found'):
        conn.link_model_to_app("app", "nope")

    assert conn.get_all_models() == ["m:1", "m:2"]
    verbose = conn.get_all_models(verbose=True)
    assert [(m["model_version"], m["is_current_version"], m["runtime"]) for m in verbose] == [
        ("1", True, "python_closure"),
        ("2", False, "python_closure"),
    ]
    assert conn.get_model_info("m", 2)["batch_size"] == -1
    assert conn.get_model_info("m", 9) is None
    assert conn.get_current_model_version("m") == "1"
    conn.set_model_version("m", 2, num_replicas=3)
    assert conn.get_current_model_version("m") == "2"
    [scale] = requests_of(fake.container_manager, "ScaleModel")
    assert (scale.name, scale.version, scale.replicas) == ("m", "2", 3)

    assert sorted(conn.get_all_model_replicas()) == ["m:1:m:1-0", "m:2:m:2-0"]
    assert conn.get_all_model_replicas(verbose=True)[0]["state"] == "READY"
    assert conn.get_num_replicas("m") == 1
    assert conn.get_model_logs("m") == {"r-0": ["started", "ready"]}

    conn.stop_inactive_model_versions(["m"])
    stop = requests_of(fake.container_manager, "StopModel")[-1]
    assert (stop.name, list(stop.versions)) == ("m", ["1"])
    conn.stop_models({"m": [2]})
    assert list(requests_of(fake.container_manager, "StopModel")[-1].versions) == ["2"]
    conn.stop_all_model_containers()
    stop = requests_of(fake.container_manager, "StopModel")[-1]
    assert (stop.name, list(stop.versions)) == ("m", [])

    conn.unlink_model_from_app("app", "m")
    assert conn.get_linked_models("app") == []
    conn.unregister_application("app")
    assert conn.get_all_apps() == []


FAKE_CLI = """
import { appendFileSync } from "node:fs";
appendFileSync(process.env.FAKE_CLI_LOG, JSON.stringify(process.argv.slice(2)) + "\\n");
if (process.env.FAKE_CLI_FAIL) {
  process.stderr.write("registry did not become healthy on 127.0.0.1:1338\\n");
  process.exit(3);
}
"""


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    cli = tmp_path / "cli" / "clipper.mjs"
    cli.parent.mkdir()
    cli.write_text(FAKE_CLI)
    log = tmp_path / "cli.log"
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    return cli, log


def test_local_container_manager_runs_clipper_up_and_down_with_its_ports(fake, fake_cli, tmp_path, monkeypatch):
    cli, log = fake_cli
    monkeypatch.setenv("CLIPPER_REPO", str(cli.parent.parent))
    manager = LocalContainerManager(
        data_dir=tmp_path / "data",
        gateway_port=2337,
        registry_port=fake.registry_port,
        router_port=2339,
        container_manager_port=fake.container_manager_port,
    )
    conn = ClipperConnection(manager)
    conn.start_clipper()
    assert conn.connected
    assert conn.get_query_addr() == "127.0.0.1:2337"
    conn.register_application("app", "ints", "0", 1000)
    conn.stop_all()
    up, down = [json.loads(line) for line in log.read_text().splitlines()]
    assert up == [
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--gateway-port",
        "2337",
        "--registry-port",
        str(fake.registry_port),
        "--router-port",
        "2339",
        "--container-manager-port",
        str(fake.container_manager_port),
    ]
    assert down == ["down", "--data-dir", str(tmp_path / "data")]
    assert not conn.connected


def test_clipper_up_failure_raises_with_its_stderr(fake_cli, monkeypatch):
    cli, _ = fake_cli
    monkeypatch.setenv("FAKE_CLI_FAIL", "1")
    conn = ClipperConnection(LocalContainerManager(cli_path=cli))
    with pytest.raises(ClipperException) as caught:
        conn.start_clipper()
    assert str(caught.value) == ("`clipper up` failed (exit code 3): registry did not become healthy on 127.0.0.1:1338")


def test_repo_root_is_found_by_walking_up_or_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "clipper.mjs").write_text("")
    monkeypatch.setenv("CLIPPER_REPO", str(tmp_path))
    assert find_repo_root() == tmp_path
    assert find_cli("/usr/bin/node") == ["/usr/bin/node", str(tmp_path / "cli" / "clipper.mjs")]
    monkeypatch.setenv("CLIPPER_REPO", str(tmp_path / "cli"))
    with pytest.raises(ClipperException, match="CLIPPER_REPO is .*, which holds no cli/clipper.mjs"):
        find_cli()
    monkeypatch.delenv("CLIPPER_REPO")
    # These tests run from the checkout: the CLI is found above the package.
    assert (find_repo_root() / "cli" / "clipper.mjs").is_file()


def test_an_installed_sdk_finds_clipper_on_path_or_says_what_to_do(tmp_path, monkeypatch):
    """An SDK installed from its wheel has no checkout above it: CLIPPER_REPO,
    then a `clipper` command on PATH, else an error saying what to do."""
    import clipper_admin.container_manager as container_manager

    installed = tmp_path / "site-packages" / "clipper_admin" / "container_manager.py"
    installed.parent.mkdir(parents=True)
    installed.write_text("")
    monkeypatch.setattr(container_manager, "__file__", str(installed))
    monkeypatch.delenv("CLIPPER_REPO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(ClipperException) as caught:
        ClipperConnection(LocalContainerManager()).start_clipper()
    message = str(caught.value)
    assert message.startswith("cannot find the Clipper server to start: set CLIPPER_REPO to a Clipper checkout")
    assert "`clipper` command on PATH" in message and "connect()" in message

    clipper = tmp_path / "bin" / "clipper"
    clipper.parent.mkdir()
    clipper.write_text("#!/bin/sh\n")
    clipper.chmod(0o755)
    manager = LocalContainerManager(data_dir=tmp_path / "data")
    assert manager.up_command()[:3] == [str(clipper), "up", "--data-dir"]
    assert manager.down_command() == [str(clipper), "down", "--data-dir", str(tmp_path / "data")]


def test_stop_all_keeps_the_state_unless_asked_to_remove_it(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for name in ("registry", "artifacts", "logs", "run"):
        (data / name).mkdir(parents=True)
        (data / name / "f").write_text("x")
    (data / "tokens").write_text("secret")
    stopped = []
    manager = LocalContainerManager(data_dir=data)
    monkeypatch.setattr(manager, "_run", lambda command, subcommand, what: stopped.append(command))
    manager.stop_all()
    assert sorted(p.name for p in data.iterdir()) == ["artifacts", "logs", "registry", "run", "tokens"]
    ClipperConnection(manager).stop_all(remove_data=True)
    assert [p.name for p in data.iterdir()] == ["tokens"]
    assert [command[-3:] for command in stopped] == [["down", "--data-dir", str(data)]] * 2
    monkeypatch.setenv("CLIPPER_DATA_DIR", str(tmp_path / "elsewhere"))
    assert LocalContainerManager().data_directory == tmp_path / "elsewhere"


def test_deploy_progress_without_ready_is_an_error(conn, fake):
    fake.container_manager.end_deploy_before_ready = True
    with pytest.raises(ClipperException, match="ended before its replicas were ready: replica 0 starting"):
        conn.deploy_model("m", 1, "doubles", resources_pb2.NodeModuleRuntime(module_path="/m.ts"))


def test_set_selection_policy_replaces_it_whole_and_reads_learned_state(fake, conn):
    conn.register_application("digits", "doubles", "-1", 20000)
    app = conn.set_selection_policy("digits", "split", weights={"digits:1": 0.9, "digits:2": 0.1})
    assert app["selection_policy"] == "split"
    (request,) = requests_of(fake.registry, "UpdateApplication")
    assert dict(request.policy.split.weights) == {"digits:1": 0.9, "digits:2": 0.1}
    app = conn.set_selection_policy("digits", "exp3", gamma=0.2, loss="zero_one")
    assert app["selection_policy"] == "exp3"
    assert conn.get_policy_state("digits") == {"policy": "exp3", "state": {"logWeights": {"a": 1}}}
    with pytest.raises(ClipperException, match="eta applies to the exp4 policy only"):
        conn.set_selection_policy("digits", "exp3", eta=1.0)
    with pytest.raises(ClipperException, match="policy must be one of"):
        conn.set_selection_policy("digits", "bandit")
