"""Clipper's quickstart with DockerContainerManager: the services as processes
(`clipper up`), the model in a container of Podman's Docker-compatible service
(docs/containers.md). Runs when podman, runc and debootstrap are installed, or
when CLIPPER_PODMAN_TESTS=1 asks for it (then a missing tool fails it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
from pathlib import Path

import pytest
from conftest import free_ports
from test_e2e_quickstart import feature_sum, query_until_answered

from clipper_admin import ClipperConnection, ClipperException, DockerContainerManager
from clipper_admin.deployers import python as python_deployer

REPO = Path(__file__).resolve().parents[3]
MISSING = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
REQUIRED = os.environ.get("CLIPPER_PODMAN_TESTS") == "1"

pytestmark = pytest.mark.skipif(
    bool(MISSING) and not REQUIRED,
    reason=f"{', '.join(MISSING)} not installed (apt-get install -y podman runc debootstrap; "
    "CLIPPER_PODMAN_TESTS=1 makes this a failure)",
)


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def labelled(cluster: str) -> list[str]:
    out = podman("ps", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter", f"label=clipper.ai/cluster={cluster}")
    return [line for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def podman_socket():
    assert not MISSING, f"CLIPPER_PODMAN_TESTS=1, but {', '.join(MISSING)} is not installed"
    image = subprocess.run(
        [str(REPO / "scripts" / "podman" / "build-images.sh")], check=True, capture_output=True, text=True, timeout=1500
    ).stdout.split()[-1]
    folder = tempfile.mkdtemp(prefix="clipper-podman-")
    socket = os.path.join(folder, "podman.sock")
    service = subprocess.Popen(
        ["podman", "--runtime", "runc", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(socket):
            assert service.poll() is None and time.monotonic() < deadline, "podman system service did not start"
            time.sleep(0.1)
        yield socket, image
    finally:
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_start_clipper_names_a_missing_socket(tmp_path):
    manager = DockerContainerManager(docker_socket=tmp_path / "no.sock", data_dir=tmp_path / "data")
    with pytest.raises(ClipperException, match=r"no Docker Engine API socket at .*no\.sock"):
        manager.start_clipper()
    with pytest.raises(ClipperException, match="must be 0"):
        DockerContainerManager(cpus=-1)


def test_quickstart_in_containers(podman_socket, tmp_path):
    socket, image = podman_socket
    cluster = f"pytest-{os.getpid()}"
    gateway, registry, router, container_manager = free_ports(4)
    conn = ClipperConnection(
        DockerContainerManager(
            docker_socket=socket,
            image=image,
            memory_limit_bytes=256 << 20,
            cpus=0.5,
            cluster_name=cluster,
            data_dir=tmp_path / "clipper-data",
            gateway_port=gateway,
            registry_port=registry,
            router_port=router,
            container_manager_port=container_manager,
        )
    )
    conn.start_clipper()
    try:
        conn.register_application(name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=2000000)
        python_deployer.deploy_python_closure(conn, name="sum-model", version=1, input_type="doubles", func=feature_sum)
        conn.link_model_to_app(app_name="hello-world", model_name="sum-model")
        answer = query_until_answered(f"127.0.0.1:{gateway}", "hello-world", [1.0, 2.0, 3.0])
        assert answer["output"] == 6.0 and answer["default"] is False
        # The replica is a container of this cluster, limited as asked.
        [container] = labelled(cluster)
        assert podman("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", container).split() == [
            str(256 << 20),
            "500000000",
        ]
    except urllib.error.URLError as error:
        raise AssertionError(f"the gateway did not answer: {error}") from error
    finally:
        conn.stop_all()
    assert labelled(cluster) == []
