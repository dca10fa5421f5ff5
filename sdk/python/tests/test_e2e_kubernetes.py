"""Clipper's quickstart with KubernetesContainerManager, against the real loopback
cluster (kube-apiserver, controller-manager, scheduler, etcd) where the loopback
kubelet runs every pod for real: the system's own (start_clipper applies
deploy/kubernetes) and the model's (docs/kubernetes.md, "From Python and the CLI").
Runs with CLIPPER_K8S_TESTS=1 (as .ci/run sets it), skipped otherwise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from test_e2e_quickstart import feature_sum, query_until_answered

from clipper.v1 import management_service_pb2 as mgmt_pb2
from clipper.v1 import resources_pb2
from clipper_admin import ClipperConnection, ClipperException, KubernetesContainerManager
from clipper_admin.deployers import python as python_deployer

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "clipper-e2e"
CLUSTER = "pyk8s"

requires_cluster = pytest.mark.skipif(
    os.environ.get("CLIPPER_K8S_TESTS") != "1",
    reason="the loopback cluster's tests run with CLIPPER_K8S_TESTS=1 (scripts/kubernetes/build-cluster-binaries.sh)",
)


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """test/kubernetes/serve-system-pods-on-loopback.ts: the cluster, the loopback kubelet and its Service proxy for
    NAMESPACE, and a redis-server; stopped when its stdin closes."""
    log_path = tmp_path_factory.mktemp("loopback") / "serve.log"
    with open(log_path, "w", encoding="utf-8") as log:
        serve = subprocess.Popen(
            [
                "node",
                "--import",
                "tsx",
                "test/kubernetes/serve-system-pods-on-loopback.ts",
                "--namespace",
                NAMESPACE,
                "--verbose",
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            line = serve.stdout.readline() if serve.stdout else ""
            if not line:
                serve.wait(timeout=30)
                raise AssertionError(f"the loopback cluster did not start:\n{log_path.read_text()[-4000:]}")
            yield json.loads(line)
        finally:
            if serve.stdin:
                serve.stdin.close()
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
            print(f"loopback cluster log: {log_path}")


def kubectl(loopback, *args: str) -> str:
    return subprocess.run(
        [loopback["kubectl"], "--kubeconfig", loopback["kubeconfig"], *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def manager(loopback, **extra) -> KubernetesContainerManager:
    return KubernetesContainerManager(
        **{
            "namespace": NAMESPACE,
            "kubeconfig": loopback["kubeconfig"],
            "cluster_name": CLUSTER,
            "kubectl": loopback["kubectl"],
            "redis_url": loopback["redisUrl"],
            "timeout_seconds": 120,
            **extra,
        }
    )


def registry_replicas(conn: ClipperConnection, model: str) -> list[resources_pb2.Replica]:
    response = conn._registry().ListReplicas(mgmt_pb2.ListReplicasRequest(model_name=model), timeout=10)
    return [r for s in response.replica_sets for r in s.replicas]


@requires_cluster
def test_quickstart_on_kubernetes(loopback):
    conn = ClipperConnection(manager(loopback))
    t0 = time.monotonic()
    conn.start_clipper()
    print(f"start_clipper: {time.monotonic() - t0:.1f} s")
    try:
        # The objects are there, labelled with the cluster name, the container-manager named by it.
        deployments = json.loads(kubectl(loopback, "-n", NAMESPACE, "get", "deployments", "-o", "json"))["items"]
        assert sorted(d["metadata"]["name"] for d in deployments) == [
            f"{CLUSTER}-clipper-container-manager",
            f"{CLUSTER}-clipper-gateway",
            f"{CLUSTER}-clipper-registry",
            f"{CLUSTER}-clipper-router",
        ]
        assert all(d["metadata"]["labels"]["clipper.ai/cluster"] == CLUSTER for d in deployments)
        (cm,) = next(d for d in deployments if d["metadata"]["name"] == f"{CLUSTER}-clipper-container-manager")["spec"][
            "template"
        ]["spec"]["containers"]
        assert {e["name"]: e.get("value") for e in cm["env"]}["CLIPPER_CLUSTER_NAME"] == CLUSTER
        assert kubectl(loopback, "get", "statefulsets", "-n", NAMESPACE, "-o", "name").strip() == ""  # external Redis

        conn.register_application(name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=2_000_000)
        t0 = time.monotonic()
        python_deployer.deploy_python_closure(conn, name="sum-model", version=1, input_type="doubles", func=feature_sum)
        print(f"deploy_python_closure: {time.monotonic() - t0:.1f} s")
        conn.link_model_to_app(app_name="hello-world", model_name="sum-model")
        addr = conn.get_query_addr()
        pods = json.loads(kubectl(loopback, "-n", NAMESPACE, "get", "pods", "-o", "json"))["items"]
        gateway_ips = {
            p["status"].get("podIP")
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/name") == "clipper-gateway"
        }
        assert addr.rsplit(":", 1)[0] in gateway_ips and addr.endswith(":1337")
        answer = query_until_answered(addr, "hello-world", [1.1, 2.2, 3.3])
        assert answer["default"] is False and float(answer["output"]) == pytest.approx(6.6)
        assert answer["models"] == ["sum-model:1"]

        t0 = time.monotonic()
        conn.set_num_replicas("sum-model", 2)
        print(f"set_num_replicas 2: {time.monotonic() - t0:.1f} s")
        model_pods = json.loads(
            kubectl(
                loopback,
                "-n",
                NAMESPACE,
                "get",
                "pods",
                "-l",
                f"clipper.ai/cluster={CLUSTER},clipper.ai/model",
                "-o",
                "json",
            )
        )["items"]
        running = [p for p in model_pods if not p["metadata"].get("deletionTimestamp")]
        assert len(running) == 2, [p["metadata"]["name"] for p in model_pods]
        ready = [r for r in registry_replicas(conn, "sum-model") if r.state == resources_pb2.REPLICA_STATE_READY]
        assert sorted(r.endpoint for r in ready) == sorted(f"{p['status']['podIP']}:7000" for p in running)
        assert query_until_answered(addr, "hello-world", [1.0, 2.0])["default"] is False

        # A new connection finds the same system by namespace and cluster name (the apiserver given as an address too).
        again = ClipperConnection(manager(loopback, kubernetes_api_ip=loopback["server"].removeprefix("https://")))
        again.connect()
        assert again.get_all_apps() == ["hello-world"]
        again.close()
    finally:
        conn.stop_all()

    # Nothing of ours is left: start_clipper created the namespace, so it went too.
    left = kubectl(loopback, "get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name").strip()
    assert left == ""
    assert (
        kubectl(loopback, "get", "pods,deployments", "-A", "-l", f"clipper.ai/cluster={CLUSTER}", "-o", "name").strip()
        == ""
    )
    with pytest.raises(ClipperException, match="has no ready endpoint|not found|NotFound"):
        ClipperConnection(manager(loopback)).connect()


@requires_cluster
def test_stop_all_leaves_a_namespace_it_did_not_create_and_its_other_objects(loopback):
    kubectl(loopback, "create", "namespace", NAMESPACE)
    kubectl(loopback, "-n", NAMESPACE, "create", "configmap", "not-ours", "--from-literal=a=b")
    try:
        conn = ClipperConnection(manager(loopback))
        conn.start_clipper()
        conn.stop_all()
        assert kubectl(loopback, "get", "namespace", NAMESPACE, "-o", "name").strip() == f"namespace/{NAMESPACE}"
        assert (
            kubectl(loopback, "-n", NAMESPACE, "get", "configmap", "not-ours", "-o", "name").strip()
            == "configmap/not-ours"
        )
        assert (
            kubectl(
                loopback, "-n", NAMESPACE, "get", "deployments,services,roles,networkpolicies", "-o", "name"
            ).strip()
            == ""
        )
    finally:
        kubectl(loopback, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")


def answer_a(xs):
    return ["from a" for _ in xs]


def answer_b(xs):
    return ["from b" for _ in xs]


# What start_clipper applies (and the pods: the other system's stay the same ones).
SIDE_BY_SIDE_KINDS = "deployments,pods,services,configmaps,serviceaccounts,roles,rolebindings,networkpolicies,pdb"


def cluster_objects(loopback, cluster: str) -> list[str]:
    """What carries the cluster's label in the namespace, by kind/name."""
    out = kubectl(
        loopback, "-n", NAMESPACE, "get", SIDE_BY_SIDE_KINDS, "-l", f"clipper.ai/cluster={cluster}", "-o", "name"
    )
    return sorted(out.split())


@requires_cluster
def test_two_systems_side_by_side_in_one_namespace(loopback):
    """Cluster names "a" and "b" in the same namespace: each its own objects (prefixed names), its own model of the
    same name, its own answers through its own gateway; stopping one leaves the other serving, with all its objects."""
    systems = {name: ClipperConnection(manager(loopback, cluster_name=name)) for name in ("a", "b")}
    t0 = time.monotonic()
    try:
        for name, conn in systems.items():
            conn.start_clipper()
            print(f"start_clipper {name}: {time.monotonic() - t0:.1f} s")
        deployments = json.loads(kubectl(loopback, "-n", NAMESPACE, "get", "deployments", "-o", "json"))["items"]
        by_name = {d["metadata"]["name"]: d for d in deployments}
        for name in ("a", "b"):
            for base in ("clipper-registry", "clipper-router", "clipper-gateway", "clipper-container-manager"):
                labels = by_name[f"{name}-{base}"]["metadata"]["labels"]
                assert labels["clipper.ai/cluster"] == name
            gateway_args = by_name[f"{name}-clipper-gateway"]["spec"]["template"]["spec"]["containers"][0]["args"]
            assert f"{name}-clipper-router:1339" in gateway_args and f"{name}-clipper-registry:1338" in gateway_args
        # Each system's Services select only its own pods.
        for name in ("a", "b"):
            gateway = json.loads(
                kubectl(loopback, "-n", NAMESPACE, "get", "service", f"{name}-clipper-gateway", "-o", "json")
            )
            assert gateway["spec"]["selector"]["clipper.ai/cluster"] == name

        for name, conn in systems.items():
            conn.register_application(name="side", input_type="doubles", default_output="none", slo_micros=2_000_000)
            func = answer_a if name == "a" else answer_b
            python_deployer.deploy_python_closure(conn, name="same-model", version=1, input_type="doubles", func=func)
            conn.link_model_to_app(app_name="side", model_name="same-model")
            print(f"deployed on {name}: {time.monotonic() - t0:.1f} s")
        addresses = {name: conn.get_query_addr() for name, conn in systems.items()}
        assert addresses["a"] != addresses["b"]
        for name in ("a", "b"):
            answer = query_until_answered(addresses[name], "side", [1.0, 2.0])
            assert answer["output"] == f"from {name}" and answer["models"] == ["same-model:1"], answer
        # Each container-manager made its own Deployment for the same model name.
        model_deployments = kubectl(
            loopback, "-n", NAMESPACE, "get", "deployments", "-l", "clipper.ai/model=same-model", "-o", "name"
        ).split()
        assert len(model_deployments) == 2, model_deployments

        b_objects = cluster_objects(loopback, "b")
        systems["a"].stop_all()
        print(f"stop_all a: {time.monotonic() - t0:.1f} s")
        assert cluster_objects(loopback, "a") == []
        assert cluster_objects(loopback, "b") == b_objects
        assert kubectl(loopback, "get", "namespace", NAMESPACE, "-o", "name").strip() == f"namespace/{NAMESPACE}"
        answer = query_until_answered(systems["b"].get_query_addr(), "side", [3.0])
        assert answer["output"] == "from b"
        with pytest.raises(ClipperException, match=r"Service a-clipper-\S+ in namespace \S+ has no ready endpoint"):
            ClipperConnection(manager(loopback, cluster_name="a")).connect()
    finally:
        for conn in systems.values():
            conn.stop_all()
    print(f"both stopped: {time.monotonic() - t0:.1f} s")
    # The last one out took the namespace start_clipper had created.
    assert kubectl(loopback, "get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name").strip() == ""


def test_the_overlay_over_deploy_kubernetes():
    """What start_clipper applies; kubectl itself is what the e2e tests above run."""
    cm = KubernetesContainerManager(namespace="team-a", cluster_name="prod", redis_url="redis://r:6379")
    overlay = cm.overlay(create_namespace=True)
    assert overlay["namespace"] == "team-a"
    assert overlay["resources"] == ["../manifests/base"]
    assert overlay["labels"] == [
        {"pairs": {"clipper.ai/cluster": "prod"}, "includeSelectors": True, "includeTemplates": True}
    ]
    assert overlay["namePrefix"] == "prod-"
    assert overlay["components"] == ["../manifests/components/external-redis"]
    assert overlay["secretGenerator"] == [{"name": "clipper-external-redis", "literals": ["url=redis://r:6379"]}]
    (patch,) = overlay["patches"]
    (container,) = json.loads(patch["patch"])["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "CLIPPER_CLUSTER_NAME", "value": "prod"}]
    kept = KubernetesContainerManager(namespace="team-a", images={"clipper/services": "reg/s:1"}).overlay(False)
    assert "components" not in kept and "namePrefix" not in kept and "replacements" not in kept
    assert kept["images"] == [{"name": "clipper/services", "newName": "reg/s:1"}]
    assert json.loads(kept["patches"][1]["patch"])["$patch"] == "delete"


def local_kubectl() -> str:
    """kubectl for rendering without a cluster: on PATH, else the one .ci/run builds."""
    found = shutil.which("kubectl") or next(
        (str(p) for p in sorted(Path.home().glob(".cache/clipper-k8s/*/bin/kubectl"))), None
    )
    if found is None:
        pytest.fail("no kubectl: install one (>= 1.27) or build the loopback cluster's (scripts/kubernetes)")
    return found


def render(cm: KubernetesContainerManager, create_namespace: bool) -> list[dict]:
    """The objects start_clipper would apply: the overlay built by kubectl's kustomize, made JSON by a
    `label --local` (no apiserver involved)."""
    kubectl_path = local_kubectl()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "deploy" / "kubernetes", Path(tmp) / "manifests")
        (Path(tmp) / "overlay").mkdir()
        (Path(tmp) / "overlay" / "kustomization.yaml").write_text(json.dumps(cm.overlay(create_namespace)))
        built = subprocess.run(
            [kubectl_path, "kustomize", str(Path(tmp) / "overlay")], check=True, capture_output=True, text=True
        ).stdout
    as_json = subprocess.run(
        [kubectl_path, "label", "--local", "-f", "-", "-o", "json", "render=1"],
        input=built,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": "/nonexistent"},
    ).stdout
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(as_json.rstrip()):
        obj, end = decoder.raw_decode(as_json, at)
        objects.append(obj)
        at = end + len(as_json[end:]) - len(as_json[end:].lstrip())
    return objects


def selectors(obj: dict) -> list[dict]:
    """The label selectors of an object that choose pods."""
    spec, kind = obj.get("spec", {}), obj["kind"]
    if kind == "Service":
        return [spec.get("selector", {})]
    if kind in ("Deployment", "StatefulSet", "PodDisruptionBudget"):
        return [spec["selector"]["matchLabels"]]
    if kind == "NetworkPolicy":
        found = [spec["podSelector"].get("matchLabels", {})]
        found += [f["podSelector"]["matchLabels"] for rule in spec.get("ingress", []) for f in rule.get("from", [])]
        return [s for s in found if s]
    return []


def cluster_name_of(objects: list[dict], prefix: str) -> str | None:
    """The container-manager's CLIPPER_CLUSTER_NAME in rendered objects; its Deployment holds that one container (a
    strategic merge on a renamed container would add a second, imageless one)."""
    name = f"{prefix}clipper-container-manager"
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--cluster-name" not in container["args"]
    return {e["name"]: e.get("value") for e in container["env"]}.get("CLIPPER_CLUSTER_NAME")


def test_the_overlay_renames_every_object_and_the_addresses_between_them():
    """Rendered for real (kubectl's kustomize): cluster "a" prefixes every name, every container arg that names one
    of the system's Services names the prefixed one, and every selector carries the cluster's label; "default"
    keeps today's names and Deployment selectors."""
    default = render(KubernetesContainerManager(namespace="team"), create_namespace=True)
    assert cluster_name_of(default, "") == "default"
    services = {o["metadata"]["name"] for o in default if o["kind"] == "Service"}
    assert "clipper-gateway" in services and "clipper-redis" in services
    for obj in default:
        for selector in selectors(obj):
            if obj["kind"] in ("Deployment", "StatefulSet"):
                assert "clipper.ai/cluster" not in selector, obj["metadata"]["name"]
            else:
                assert selector["clipper.ai/cluster"] == "default", obj["metadata"]["name"]

    for redis_url in (None, "redis://r:6379"):
        objects = render(KubernetesContainerManager(namespace="team", cluster_name="a", redis_url=redis_url), True)
        names = {o["metadata"]["name"] for o in objects if o["kind"] != "Namespace"}
        # ConfigMaps and Secrets end in their content's hash.
        expected = services - ({"clipper-redis"} if redis_url else set())  # components/external-redis removes it
        assert {re.sub(r"-[a-z0-9]{10}$", "", n) for n in names} >= {f"a-{n}" for n in expected}
        assert all(n.startswith("a-") for n in names), names
        assert cluster_name_of(objects, "a-") == "a"
        assert [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"] == ["team"]
        args = [
            arg
            for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")
            for c in o["spec"]["template"]["spec"]["containers"]
            for arg in c.get("args", [])
        ]
        assert "a-clipper-registry:1338" in args and "a-clipper-router:1339" in args
        assert "http://a-clipper-container-manager:1342" in args
        for arg in args:
            for service in services:
                assert re.search(rf"(?<![a-z0-9-]){re.escape(service)}(?![a-z0-9-])", arg) is None, arg
        for obj in objects:
            for selector in selectors(obj):
                assert selector["clipper.ai/cluster"] == "a", obj["metadata"]["name"]
        (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
        assert config["data"]["CLIPPER_REDIS_PREFIX"] == "clipper:a:"
        if redis_url is None:
            assert config["data"]["CLIPPER_REDIS_URL"] == "redis://a-clipper-redis:6379"
        else:
            assert not any(o["kind"] == "StatefulSet" for o in objects)
    with pytest.raises(ClipperException, match="too long for Kubernetes"):
        KubernetesContainerManager(cluster_name="x" * 40)


def test_bad_arguments_are_refused():
    with pytest.raises(ClipperException, match="cluster name 'Bad_Name' is not valid"):
        KubernetesContainerManager(cluster_name="Bad_Name")
    with pytest.raises(ClipperException, match="namespace 'Bad_NS' is not valid"):
        KubernetesContainerManager(namespace="Bad_NS")
    with pytest.raises(ClipperException, match="kubectl is not on PATH|cannot run"):
        KubernetesContainerManager(kubectl="/nonexistent/kubectl").start_clipper()
