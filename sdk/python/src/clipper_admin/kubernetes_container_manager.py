"""Clipper on a Kubernetes cluster: the system from deploy/kubernetes, the model replicas as Deployments.

Everything goes through kubectl (>= 1.27, kustomize built in), found on PATH or given as `kubectl=`.
docs/kubernetes.md, "From Python and the CLI", says how the services are reached and why.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .container_manager import ContainerManager, find_repo_root, validate_cluster_name
from .exceptions import ClipperException

log = logging.getLogger("clipper_admin")

# The label that marks what start_clipper applied for a cluster name; the container-manager's model Deployments
# carry the same label (services/container-manager/backends/kubernetes-backend.ts, LABELS.cluster).
CLUSTER_LABEL = "clipper.ai/cluster"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# The Services of deploy/kubernetes and the port each client uses: (Service, port name).
GATEWAY_SERVICE = ("clipper-gateway", "http")
REGISTRY_SERVICE = ("clipper-registry", "grpc")
CONTAINER_MANAGER_SERVICE = ("clipper-container-manager", "grpc")
SYSTEM_DEPLOYMENTS = ("clipper-registry", "clipper-router", "clipper-gateway", "clipper-container-manager")

# The container args of deploy/kubernetes/base that name another of its Services, per (Deployment, container): the
# Service and the arg around its name. A cluster name other than "default" prefixes every object's name
# (kustomize's namePrefix renames the references kustomize knows itself: selectors' Services, ConfigMap, Secret and
# ServiceAccount refs); these addresses are strings to kustomize, so the overlay renames them with `replacements`,
# each finding its arg by its whole value: a manifest that no longer has it fails the apply.
_SERVICE_ADDRESS_ARGS = {
    ("clipper-router", "router"): (("clipper-registry", "{}:1338"),),
    ("clipper-gateway", "gateway"): (("clipper-router", "{}:1339"), ("clipper-registry", "{}:1338")),
    ("clipper-container-manager", "container-manager"): (
        ("clipper-registry", "{}:1338"),
        ("clipper-container-manager", "http://{}:1342"),
    ),
}
# The registry's ConfigMap (base/kustomization.yaml's configMapGenerator): the Redis StatefulSet's Service in its URL.
_REDIS_URL = "redis://{}:6379"
_REDIS_SERVICE = "clipper-redis"
# A ConfigMap kustomize keeps to itself (not applied): the source of the renamed addresses.
_ADDRESSES_CONFIGMAP = "clipper-cluster-addresses"

# The container-manager's container and the variable that names its cluster in
# deploy/kubernetes/base/container-manager.yaml (the overlay sets it by a strategic merge on these names).
_CONTAINER_MANAGER_CONTAINER = "container-manager"
_CLUSTER_NAME_ENV = "CLIPPER_CLUSTER_NAME"

# A namespace's name is a DNS label (RFC 1123).
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# The kinds start_clipper applies (deploy/kubernetes), deleted by label on stop_all.
_SYSTEM_KINDS = (
    "deployments.apps,statefulsets.apps,services,configmaps,secrets,serviceaccounts,"
    "roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,"
    "poddisruptionbudgets.policy,networkpolicies.networking.k8s.io"
)


def object_name(cluster_name: str, name: str) -> str:
    """The name deploy/kubernetes's object `name` has for a cluster name: "default" keeps the manifests' names, any
    other prefixes them with `<cluster_name>-` (several systems in one namespace)."""
    return name if cluster_name == "default" else f"{cluster_name}-{name}"


class KubernetesContainerManager(ContainerManager):
    """Clipper in namespace `namespace` of a Kubernetes cluster (Clipper's
    KubernetesContainerManager, on today's APIs).

    `start_clipper()` applies deploy/kubernetes (kustomize) into `namespace`,
    with the container-manager's `CLIPPER_CLUSTER_NAME` set to `cluster_name` and
    every object labelled `clipper.ai/cluster=<cluster_name>` (in the
    selectors too), and waits until the registry, router, gateway and
    container-manager are rolled out; `connect()` reaches a system already
    there. A cluster name other than "default" prefixes every object's name
    (`<cluster_name>-clipper-gateway`, ...), so several systems share one
    namespace (overlay()). `stop_all()` deletes what start_clipper applied (by
    that label) and the model Deployments of `cluster_name`, nothing else; the
    Namespace too when a start_clipper created it and no other system is left.

    The cluster: `kubeconfig` (default: kubectl's, $KUBECONFIG or
    ~/.kube/config) and `kubernetes_api_ip` (an apiserver address,
    `host:port` or a URL, in place of the kubeconfig's). `redis_url`: the
    registry's store is that Redis (components/external-redis) instead of
    the manifests' Redis StatefulSet, which needs a PersistentVolume.
    `images`: image name -> new name (`clipper/services`,
    `clipper/model-runtime`), as kustomize's `images:`.

    The services are ClusterIP Services: by default they are reached at their
    ready endpoints (the Ready pods their selectors match, at the target port:
    pod IPs, reachable from inside the cluster's network; service_endpoints()
    says why not from the EndpointSlices); from outside it, give `gateway_address`,
    `registry_address` and `container_manager_address` (a LoadBalancer, or
    `kubectl port-forward`)."""

    def __init__(
        self,
        kubernetes_api_ip: str | None = None,
        namespace: str = "clipper",
        kubeconfig: str | os.PathLike[str] | None = None,
        cluster_name: str = "default",
        kubectl: str | None = None,
        manifests: str | os.PathLike[str] | None = None,
        redis_url: str | None = None,
        images: dict[str, str] | None = None,
        gateway_address: str | None = None,
        registry_address: str | None = None,
        container_manager_address: str | None = None,
        timeout_seconds: float = 180.0,
    ) -> None:
        super().__init__()
        if not isinstance(namespace, str) or _DNS_LABEL.fullmatch(namespace) is None:
            raise ClipperException(
                f"namespace {namespace!r} is not valid: use 1 to 63 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit (a DNS label)"
            )
        self.namespace = namespace
        self.cluster_name = validate_cluster_name(cluster_name)
        longest = object_name(self.cluster_name, CONTAINER_MANAGER_SERVICE[0])
        if len(longest) > 63:
            raise ClipperException(
                f"cluster name {cluster_name!r} is too long for Kubernetes: its Service {longest} would be "
                f"{len(longest)} characters, a Service's name is at most 63"
            )
        self.kubeconfig = str(kubeconfig) if kubeconfig is not None else None
        self.kubernetes_api_ip = kubernetes_api_ip
        self._kubectl = kubectl
        self._manifests = Path(manifests) if manifests is not None else None
        self.redis_url = redis_url
        self.images = dict(images or {})
        self._given = {
            GATEWAY_SERVICE[0]: gateway_address,
            REGISTRY_SERVICE[0]: registry_address,
            CONTAINER_MANAGER_SERVICE[0]: container_manager_address,
        }
        self.timeout_seconds = timeout_seconds

    # -- kubectl ---------------------------------------------------------

    def kubectl_command(self) -> list[str]:
        """kubectl with this cluster's kubeconfig and server, before its subcommand."""
        kubectl = self._kubectl or shutil.which("kubectl")
        if kubectl is None:
            raise ClipperException(
                "kubectl is not on PATH: install kubectl >= 1.27 or pass KubernetesContainerManager(kubectl=<path>)"
            )
        command = [kubectl]
        if self.kubeconfig is not None:
            command += ["--kubeconfig", self.kubeconfig]
        if self.kubernetes_api_ip:
            server = self.kubernetes_api_ip
            command += ["--server", server if "://" in server else f"https://{server}"]
        return command

    def _kubectl_run(self, args: list[str], what: str, timeout: float | None = None, check: bool = True) -> str:
        command = [*self.kubectl_command(), *args]
        log.debug("running %s", " ".join(command))
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout or self.timeout_seconds,
            )
        except FileNotFoundError as error:
            raise ClipperException(f"cannot run {command[0]!r} to {what}: {error}") from error
        except subprocess.TimeoutExpired as error:
            raise ClipperException(f"kubectl did not {what} within {timeout or self.timeout_seconds:g} s") from error
        if check and completed.returncode != 0:
            message = completed.stderr.strip() or completed.stdout.strip()
            raise ClipperException(f"kubectl failed to {what} (exit code {completed.returncode}): {message}")
        return completed.stdout

    def _kubectl_json(self, args: list[str], what: str) -> Any:
        return json.loads(self._kubectl_run([*args, "-o", "json"], what, timeout=30.0) or "{}")

    # -- addresses -------------------------------------------------------

    def service_endpoints(self, service: str, port_name: str) -> list[str]:
        """host:port of each ready endpoint of a Service's port: the ready pods its selector
        matches (not being deleted), at the port's targetPort. This is what the EndpointSlice
        controller computes; it is read from the pods because EndpointSlices refuse loopback
        addresses, which the loopback cluster's pods have (docs/kubernetes.md)."""
        spec = self._kubectl_json(
            ["-n", self.namespace, "get", "service", service, "--ignore-not-found"], f"read Service {service}"
        ).get("spec", {})
        selector = spec.get("selector") or {}
        port = next((p for p in spec.get("ports") or [] if p.get("name", "") == port_name), None)
        if not selector or port is None:
            return []
        target = port.get("targetPort", port.get("port"))
        pods = self._kubectl_json(
            ["-n", self.namespace, "get", "pods", "-l", ",".join(f"{k}={v}" for k, v in sorted(selector.items()))],
            f"list the pods of Service {service}",
        )
        endpoints: list[str] = []
        for pod in pods.get("items", []):
            status = pod.get("status", {})
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if not ready or not status.get("podIP") or pod.get("metadata", {}).get("deletionTimestamp"):
                continue
            number = (
                target
                if isinstance(target, int)
                else next(
                    (
                        p.get("containerPort")
                        for c in pod.get("spec", {}).get("containers", [])
                        for p in c.get("ports") or []
                        if p.get("name") == target
                    ),
                    None,
                )
            )
            if number is not None:
                host = status["podIP"]
                endpoints.append(f"[{host}]:{number}" if ":" in host else f"{host}:{number}")
        return sorted(endpoints)

    def _address(self, service: tuple[str, str]) -> str:
        given = self._given[service[0]]
        if given:
            return given
        name = object_name(self.cluster_name, service[0])
        ready = self.service_endpoints(name, service[1])
        if not ready:
            raise ClipperException(
                f"Service {name} in namespace {self.namespace} has no ready endpoint: is Clipper cluster "
                f"{self.cluster_name} running there (start_clipper())? From outside the cluster's network, pass its "
                f"address (a LoadBalancer, or kubectl -n {self.namespace} port-forward service/{name} ...)"
            )
        return ready[0]

    @property
    def registry_address(self) -> str:
        return self._address(REGISTRY_SERVICE)

    @property
    def container_manager_address(self) -> str:
        return self._address(CONTAINER_MANAGER_SERVICE)

    @property
    def query_address(self) -> str:
        return self._address(GATEWAY_SERVICE)

    # -- start and stop --------------------------------------------------

    def manifests_dir(self) -> Path:
        """deploy/kubernetes: `manifests`, else the checkout's (find_repo_root)."""
        root = self._manifests if self._manifests is not None else find_repo_root() / "deploy" / "kubernetes"
        if not (root / "base" / "kustomization.yaml").is_file():
            raise ClipperException(
                f"{root} holds no base/kustomization.yaml: pass manifests=<a copy of deploy/kubernetes>"
            )
        return root

    def _namespace_exists(self) -> bool:
        out = self._kubectl_run(
            ["get", "namespace", self.namespace, "--ignore-not-found", "-o", "name"], "read the namespace", 30.0
        )
        return bool(out.strip())

    def overlay(self, create_namespace: bool) -> dict[str, Any]:
        """The kustomization start_clipper applies over deploy/kubernetes's base (JSON is YAML to kustomize)."""
        patches: list[dict[str, Any]] = [
            {
                "target": {"kind": "Deployment", "name": "clipper-container-manager"},
                "patch": json.dumps(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "clipper-container-manager"},
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {
                                            "name": _CONTAINER_MANAGER_CONTAINER,
                                            "env": [{"name": _CLUSTER_NAME_ENV, "value": self.cluster_name}],
                                        }
                                    ]
                                }
                            }
                        },
                    }
                ),
            }
        ]
        if not create_namespace:
            # The namespace is someone's already: not ours to label, nor to delete on stop_all.
            patches.append(
                {
                    "patch": json.dumps(
                        {"$patch": "delete", "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clipper"}}
                    )
                }
            )
        overlay: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["../manifests/base"],
            "namespace": self.namespace,
            "labels": self._cluster_labels(),
            "patches": patches,
        }
        if self.redis_url is not None:
            overlay["components"] = ["../manifests/components/external-redis"]
            overlay["secretGenerator"] = [{"name": "clipper-external-redis", "literals": [f"url={self.redis_url}"]}]
        if self.images:
            overlay["images"] = [{"name": name, "newName": new} for name, new in self.images.items()]
        if self.cluster_name != "default":
            overlay.update(self._renamed_objects())
        return overlay

    def _cluster_labels(self) -> list[dict[str, Any]]:
        """clipper.ai/cluster on every object and pod template, and in the selectors, so that one system's Services,
        NetworkPolicies and PodDisruptionBudgets never select another's pods. "default" adds it only to those
        (mutable) selectors, not to its Deployments' and StatefulSet's, which are immutable: a system applied before
        the label was in the selectors is re-applied in place."""
        pairs = {CLUSTER_LABEL: self.cluster_name}
        if self.cluster_name != "default":
            return [{"pairs": pairs, "includeSelectors": True, "includeTemplates": True}]
        selectors = [
            {"kind": "Service", "path": "spec/selector"},
            {"kind": "NetworkPolicy", "path": "spec/podSelector/matchLabels"},
            {"kind": "NetworkPolicy", "path": "spec/ingress/from/podSelector/matchLabels"},
            {"kind": "PodDisruptionBudget", "path": "spec/selector/matchLabels"},
        ]
        return [
            {"pairs": pairs, "includeSelectors": False, "includeTemplates": True},
            {"pairs": pairs, "fields": [{**field, "create": False} for field in selectors]},
        ]

    def _renamed_objects(self) -> dict[str, Any]:
        """The overlay's part for a cluster name other than "default": every object's name prefixed, and the
        addresses in args and in the registry's ConfigMap renamed with them (_SERVICE_ADDRESS_ARGS). The registry's
        Redis keys get the cluster name in their prefix too, so two systems can share one external Redis."""
        literals: list[str] = []
        replacements: list[dict[str, Any]] = []
        for (deployment, container), addresses in _SERVICE_ADDRESS_ARGS.items():
            for service, template in addresses:
                key = f"address-{len(literals)}"
                literals.append(f"{key}={template.format(object_name(self.cluster_name, service))}")
                replacements.append(
                    {
                        "source": {"kind": "ConfigMap", "name": _ADDRESSES_CONFIGMAP, "fieldPath": f"data.{key}"},
                        "targets": [
                            {
                                "select": {"kind": "Deployment", "name": deployment},
                                "fieldPaths": [
                                    f"spec.template.spec.containers.[name={container}].args.[={template.format(service)}]"
                                ],
                            }
                        ],
                    }
                )
        registry_config = [f"CLIPPER_REDIS_PREFIX=clipper:{self.cluster_name}:"]
        if self.redis_url is None:
            registry_config.append(
                f"CLIPPER_REDIS_URL={_REDIS_URL.format(object_name(self.cluster_name, _REDIS_SERVICE))}"
            )
        return {
            "namePrefix": f"{self.cluster_name}-",
            "configMapGenerator": [
                {
                    "name": _ADDRESSES_CONFIGMAP,
                    "literals": literals,
                    "options": {
                        "disableNameSuffixHash": True,
                        # kustomize's own: a replacement's source, never applied.
                        "annotations": {"config.kubernetes.io/local-config": "true"},
                    },
                },
                {"name": "clipper-registry", "behavior": "merge", "literals": registry_config},
            ],
            "replacements": replacements,
        }

    def start_clipper(self) -> None:
        """Applies deploy/kubernetes for this cluster name and namespace, and returns once the
        system's Deployments are rolled out and the registry, container-manager and gateway
        have ready endpoints."""
        deadline = time.monotonic() + self.timeout_seconds
        create_namespace = not self._namespace_exists()
        with tempfile.TemporaryDirectory(prefix="clipper-kustomize-") as tmp:
            shutil.copytree(self.manifests_dir(), Path(tmp) / "manifests")
            overlay_dir = Path(tmp) / "overlay"
            overlay_dir.mkdir()
            (overlay_dir / "kustomization.yaml").write_text(json.dumps(self.overlay(create_namespace), indent=2))
            self._kubectl_run(
                ["apply", "-k", str(overlay_dir)], f"apply deploy/kubernetes to namespace {self.namespace}"
            )
        log.info("applied deploy/kubernetes to namespace %s (cluster %s)", self.namespace, self.cluster_name)
        for base_name in SYSTEM_DEPLOYMENTS:
            deployment = object_name(self.cluster_name, base_name)
            remaining = max(1.0, deadline - time.monotonic())
            self._kubectl_run(
                ["-n", self.namespace, "rollout", "status", f"deployment/{deployment}", f"--timeout={int(remaining)}s"],
                f"roll out deployment/{deployment} in namespace {self.namespace}",
                timeout=remaining + 10,
            )
        for service in (REGISTRY_SERVICE, CONTAINER_MANAGER_SERVICE, GATEWAY_SERVICE):
            name = object_name(self.cluster_name, service[0])
            while not self._given[service[0]] and not self.service_endpoints(name, service[1]):
                if time.monotonic() > deadline:
                    raise ClipperException(
                        f"Service {name} has no ready endpoint {self.timeout_seconds:g} s after the apply"
                    )
                time.sleep(0.5)

    def _wait_pods_gone(self, selector: str) -> None:
        self._kubectl_run(
            [
                "-n",
                self.namespace,
                "wait",
                "--for=delete",
                "pods",
                "-l",
                selector,
                f"--timeout={int(self.timeout_seconds)}s",
            ],
            f"see the pods of {selector} gone",
            timeout=self.timeout_seconds + 10,
        )

    def stop_all(self, remove_data: bool = False) -> None:
        """Deletes what start_clipper applied for this cluster name (by its label; the Namespace only
        when a start_clipper created it and no other Clipper system is left there) and the model
        Deployments of this cluster name, and waits until their pods are gone. `remove_data`: the
        Redis StatefulSet's volume claim too."""
        ns = ["-n", self.namespace]
        label = f"{CLUSTER_LABEL}={self.cluster_name}"
        timeout = f"--timeout={int(self.timeout_seconds)}s"
        # The container-manager first, and its pod gone: running, it would recreate the model Deployments deleted below.
        container_manager = f"app.kubernetes.io/name=clipper-container-manager,{label}"
        self._kubectl_run(
            [*ns, "delete", "deployments.apps", "-l", container_manager, "--ignore-not-found"],
            "delete the container-manager",
        )
        self._wait_pods_gone(container_manager)
        # The model Deployments carry the cluster's label too.
        self._kubectl_run(
            [*ns, "delete", _SYSTEM_KINDS, "-l", label, "--ignore-not-found"],
            f"delete the objects of cluster {self.cluster_name}",
        )
        if remove_data:
            self._kubectl_run(
                [
                    *ns,
                    "delete",
                    "pvc",
                    f"data-{object_name(self.cluster_name, _REDIS_SERVICE)}-0",
                    "--ignore-not-found",
                ],
                "delete Redis's volume claim",
            )
        self._wait_pods_gone(label)
        # The namespace, when a start_clipper created it (only then does it carry the label), goes with the last
        # Clipper system in it: another cluster name's system there keeps it.
        others = self._kubectl_run(
            [*ns, "get", "deployments.apps,statefulsets.apps", "-l", CLUSTER_LABEL, "-o", "name"],
            "look for other Clipper systems in the namespace",
            30.0,
        ).strip()
        if others:
            log.info("namespace %s kept: other Clipper systems run there (%s)", self.namespace, others.splitlines()[0])
        else:
            self._kubectl_run(
                [
                    "delete",
                    "namespace",
                    "-l",
                    CLUSTER_LABEL,
                    "--field-selector",
                    f"metadata.name={self.namespace}",
                    "--wait=true",
                    timeout,
                ],
                f"delete namespace {self.namespace}",
            )
        log.info("deleted Clipper cluster %s from namespace %s", self.cluster_name, self.namespace)
