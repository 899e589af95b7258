"""The ``kubernetes`` platform: the workload as a Deployment on GPU nodes.

``deploy: true`` creates the fault-token Secret, the Deployment, Service,
PodDisruptionBudget (and a KEDA ScaledObject) through the official client, waits for the
rollout, and deletes exactly those objects (by uid) at the end, plus the namespace when it
created it. ``deploy: false`` targets pods that run already, found by label selector, and
creates nothing. Node loss is cordon and drain through chaostoolkit-kubernetes; every node
it cordoned is uncordoned by :meth:`stop` whatever happened.
"""

from __future__ import annotations

import atexit
import logging
import time
from pathlib import Path
from typing import Any

from harness.config import KubernetesPlatformSpec, WorkloadSpec
from harness.errors import PlatformError, WorkloadNotReady
from harness.faults.active import ActiveFault, guard
from harness.faults.kubehook import read_token
from harness.faults.policy import TTL_MARGIN_S
from harness.platforms.base import ReplicaInfo
from harness.platforms.kubernetes.client import (
    Safety,
    api_client,
    check_context,
    kubeconfig_path,
)
from harness.platforms.kubernetes.manifests import MANAGED_BY, render, selector_string
from harness.platforms.kubernetes.objects import Created, delete_created, rollout_state
from harness.platforms.kubernetes.podaccess import create_token_secret, pod_metrics_text
from harness.platforms.kubernetes.portforward import PortForwarder
from harness.platforms.kubernetes.watcher import (
    ClusterWatcher,
    pod_ready,
)
from harness.timeline import Timeline

log = logging.getLogger(__name__)


class KubernetesPlatform:
    """The workload on a Kubernetes cluster (see the module docstring)."""

    kind = "kubernetes"

    def __init__(
        self,
        spec: KubernetesPlatformSpec,
        workload: WorkloadSpec,
        timeline: Timeline,
        run_dir: Path | None = None,
        *,
        context: str | None = None,
        dry_run: bool = False,
    ) -> None:
        self.spec = spec
        self.workload = workload
        self.timeline = timeline
        self.run_dir = run_dir
        self.context_override = context
        self.dry_run = dry_run
        self.safety = Safety.of(spec)
        self.namespace = spec.namespace
        self.pod_selector = selector_string(spec.pod_labels)
        self.node_selector = selector_string(spec.gpu_node_selector)
        self.context = ""
        self.created: list[Created] = []
        self.cordoned: set[str] = set()
        self._node_faults: dict[str, ActiveFault] = {}  # cordoned node -> its reverter record
        self.plan: list[str] = []  # dry run: what would have been done
        self._api: Any = None
        self._watcher: ClusterWatcher | None = None
        self._forwarder: PortForwarder | None = None
        self._token: str | None = None  # the fault hook's token (see fault_token)
        self._started = False
        self._stopped = False

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> Any:
        """Check the context and the namespace, and return the ApiClient (once)."""
        if self._api is None:
            self.safety.namespace(self.namespace)
            path, self.context = check_context(self.spec, self.context_override)
            self._api = api_client(path, self.context)
            log.info("kube context %s, namespace %s", self.context, self.namespace)
        return self._api

    @property
    def api(self) -> Any:
        if self._api is None:
            raise PlatformError("the kubernetes platform is not connected")
        return self._api

    @property
    def kubeconfig(self) -> str:
        """The kubeconfig file in use (what the reverter reads to undo a node fault)."""
        return kubeconfig_path(self.spec)

    @property
    def chaos_secrets(self) -> dict[str, str]:
        """Secrets for chaostoolkit-kubernetes activities: the same context."""
        return {"KUBERNETES_CONTEXT": self.context}

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    # -- Platform protocol -----------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._forwarder is not None:
            return f"http://127.0.0.1:{self._forwarder.port}"
        return self.service_url

    @property
    def service_url(self) -> str:
        """The workload's URL inside the cluster (what Locust as Jobs sends to): ``url`` when
        set, else the Service's cluster DNS name, whatever ``access`` is."""
        if self.spec.url:
            return self.spec.url.rstrip("/")
        return f"http://{self.spec.name}.{self.namespace}.svc.cluster.local:{self.spec.port}"

    def start(self) -> None:
        """Deploy (or find) the workload and wait until it is Ready; start the watchers."""
        if self._started:
            raise PlatformError("kubernetes platform already started")
        self._started = True
        self.connect()
        atexit.register(self.stop)
        device = f"cuda x{self.spec.gpus_per_replica}" if self.spec.gpus_per_replica else "cpu"
        self._watcher = ClusterWatcher(
            self.api,
            self.namespace,
            self.pod_selector,
            self.node_selector,
            self.spec.name if self.spec.deploy else None,
            self.timeline,
            self.run_dir,
            self.spec.poll_interval_s,
            device,
        )
        self._watcher.prime()
        try:
            if self.spec.deploy:
                self._deploy()
            if self.dry_run:
                self._plan_existing()
                return
            self._watcher.start()
            self._wait_ready()
            if self.spec.access == "port-forward":
                self._forwarder = PortForwarder(
                    self.api, self.namespace, self.ready_pods, self.spec.port
                )
                self._forwarder.start()
        except BaseException:
            self.stop()
            raise
        log.info("kubernetes platform ready at %s", self.endpoint)

    def stop(self) -> None:
        """Uncordon what was cordoned, delete what was created; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._forwarder is not None:
            self._forwarder.stop()
        if self._watcher is not None:
            self._watcher.stop()
        if self._api is None:
            return
        for node in sorted(self.cordoned):
            try:
                self.uncordon(node)
            except Exception as exc:
                log.error("could not uncordon node %s: %s", node, exc)
        delete_created(self.api, self.created)

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        """Report to ``timeline`` and keep cluster events and node records under ``run_dir``
        from now on (a game day hands the deployment from run to run)."""
        self.timeline = timeline
        self.run_dir = run_dir
        if self._watcher is not None:
            self._watcher.attach(timeline, run_dir)

    def restore(self) -> list[str]:
        """Uncordon every node this deployment cordoned (a game day's reset, after every
        fault was reverted); returns what it did. Waiting for Ready is the caller's."""
        done = []
        for node in sorted(self.cordoned):
            self.uncordon(node)
            done.append(f"node {node} uncordoned")
        return done

    def nodes(self) -> list[str]:
        if self._watcher is not None:
            return self._watcher.node_names()
        return [n.metadata.name for n in self.gpu_nodes()]

    def replicas(self) -> list[ReplicaInfo]:
        if self._watcher is None:
            return []
        return self._watcher.replicas()

    def node_down(self, node: str) -> list[int]:
        """Cordon and drain ``node``; returns no pids (pods are not local processes)."""
        self.drain(node)
        return []

    def node_up(self, node: str) -> None:
        """Uncordon ``node``; a no-op when this run did not cordon it."""
        if node in self.cordoned:
            self.uncordon(node)

    # -- cluster actions (used by harness.chaos.k8s) ----------------------------------------

    def pods(self) -> list[Any]:
        """The workload's pods now (read from the API)."""
        return list(
            self.core().list_namespaced_pod(self.namespace, label_selector=self.pod_selector).items
        )

    def ready_pods(self) -> list[str]:
        if self._watcher is not None:
            return [r.id for r in self._watcher.replicas() if r.state == "ready"]
        return [p.metadata.name for p in self.pods() if pod_ready(p)]

    def pod_ready(self, pod: Any) -> bool:
        """Whether ``pod`` is Ready (its Ready condition is true)."""
        return pod_ready(pod)

    def gpu_nodes(self) -> list[Any]:
        """Nodes carrying the GPU node labels."""
        return list(self.core().list_node(label_selector=self.node_selector).items)

    def gpu_node(self, name: str) -> Any:
        """The node ``name``; PlatformError unless it exists and carries the GPU labels."""
        from kubernetes.client.exceptions import ApiException

        try:
            node = self.core().read_node(name)
        except ApiException as exc:
            raise PlatformError(f"cannot read node {name!r}: {exc.reason}") from exc
        self.safety.node(name, node.metadata.labels)
        return node

    def drain(self, node: str, timeout_s: int = 120, ttl_s: float | None = None) -> list[str]:
        """Cordon and drain ``node`` through chaostoolkit-kubernetes; returns evicted pods.

        Before the cordon, the node is registered with the detached reverter: it is
        uncordoned if the harness dies or ``ttl_s`` (default: ``timeout_s`` plus
        ``TTL_MARGIN_S``) runs out before :meth:`uncordon`."""
        self.gpu_node(node)
        on_node = [
            p.metadata.name
            for p in self.core()
            .list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
            .items
        ]
        if self.dry_run:
            self.plan.append(f"would cordon and drain node {node} (pods: {', '.join(on_node)})")
            return on_node
        from chaosk8s.node.actions import drain_nodes

        if node not in self._node_faults:
            ttl = ttl_s if ttl_s is not None else timeout_s + TTL_MARGIN_S
            run_dir = Path(self.run_dir) if self.run_dir is not None else None
            self._node_faults[node] = guard(
                self.kubeconfig, self.context, "cordon", node, "uncordon", ttl, run_dir
            )
        self.cordoned.add(node)
        drain_nodes(
            name=node,
            delete_pods_with_local_storage=True,
            timeout=timeout_s,
            secrets=self.chaos_secrets,
        )
        return on_node

    def uncordon(self, node: str) -> None:
        """Make ``node`` schedulable again (chaostoolkit-kubernetes)."""
        self.gpu_node(node)
        if self.dry_run:
            self.plan.append(f"would uncordon node {node}")
            return
        from chaosk8s.node.actions import uncordon_node

        uncordon_node(name=node, secrets=self.chaos_secrets)
        self.cordoned.discard(node)
        fault = self._node_faults.pop(node, None)
        if fault is not None:
            fault.revert()  # removes the record (and ends its reverter)

    def refresh(self) -> None:
        """Read pods and nodes now, so the timeline is up to date."""
        if self._watcher is not None:
            self._watcher.poll_now()

    # -- internals -------------------------------------------------------------------------

    def _deploy(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = self.core()
        try:
            core.read_namespace(self.namespace)
            namespace_exists = True
        except ApiException as exc:
            if exc.status != 404:
                raise PlatformError(
                    f"cannot read namespace {self.namespace}: {exc.reason}"
                ) from exc
            namespace_exists = False
        objects = render(self.spec, self.workload)
        if self.dry_run:
            if not namespace_exists:
                self.plan.append(f"would create namespace {self.namespace}")
            self.plan.append(f"would create Secret {self.namespace}/{self.spec.token_secret}")
            for obj in objects:
                self.plan.append(
                    f"would create {obj['kind']} {self.namespace}/{obj['metadata']['name']}"
                )
            return
        if not namespace_exists:
            body = {"metadata": {"name": self.namespace, "labels": dict(MANAGED_BY)}}
            ns = core.create_namespace(body)
            self.created.append(Created("Namespace", self.namespace, None, ns.metadata.uid))
        self._create_token_secret(core)
        apps = client.AppsV1Api(self.api)
        policy = client.PolicyV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        ns_name = self.namespace
        creators = {
            "Deployment": lambda b: apps.create_namespaced_deployment(ns_name, b),
            "Service": lambda b: core.create_namespaced_service(ns_name, b),
            "PodDisruptionBudget": lambda b: policy.create_namespaced_pod_disruption_budget(
                ns_name, b
            ),
            "ScaledObject": lambda b: custom.create_namespaced_custom_object(
                "keda.sh", "v1alpha1", ns_name, "scaledobjects", b
            ),
        }
        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            try:
                made = creators[kind](obj)
            except ApiException as exc:
                if exc.status == 409:
                    raise PlatformError(
                        f"{kind} {ns_name}/{name} exists already and is not this run's: delete "
                        "it, pick another platform.name, or target it with deploy: false"
                    ) from exc
                raise PlatformError(f"cannot create {kind} {ns_name}/{name}: {exc.reason}") from exc
            meta = made["metadata"] if isinstance(made, dict) else made.metadata
            uid = meta["uid"] if isinstance(meta, dict) else meta.uid
            self.created.append(Created(kind, name, ns_name, str(uid or "")))
            log.info("created %s %s/%s", kind, ns_name, name)

    def _create_token_secret(self, core: Any) -> None:
        made, self._token = create_token_secret(core, self.spec)
        self.created.append(made)

    def fault_token(self, replica_id: str) -> str | None:
        """The fault hook's token of the pod ``replica_id`` (every pod of the workload reads the
        same Secret): the one this run created, else read from the Secret; None without one."""
        if self._token is None and self._api is not None:
            self._token = read_token(self.core(), self.namespace, self.spec.token_secret)
        return self._token

    def metrics_text(self, replica_id: str, timeout_s: float = 1.0) -> str:
        """The pod's Prometheus ``/metrics`` through the API server's pod proxy."""
        return pod_metrics_text(self.api, self.namespace, replica_id, self.spec.port, timeout_s)

    def _plan_existing(self) -> None:
        pods = self.pods()
        nodes = self.gpu_nodes()
        self.plan.append(
            f"workload pods ({self.pod_selector}) now: "
            + (", ".join(f"{p.metadata.name}@{p.spec.node_name}" for p in pods) or "none")
        )
        self.plan.append(
            f"GPU nodes ({self.node_selector}): "
            + (", ".join(n.metadata.name for n in nodes) or "none")
        )

    def _wait_ready(self) -> None:
        timeout = self.spec.rollout_timeout_s
        deadline = time.monotonic() + timeout
        while True:
            problem, done = self._rollout_state()
            if done:
                if self._watcher is not None:
                    self._watcher.poll_now()  # replicas() reflects the rollout on return
                return
            if problem is not None and problem.startswith("fatal: "):
                raise WorkloadNotReady(f"rollout of {self._what()} failed: {problem[7:]}")
            if time.monotonic() >= deadline:
                raise WorkloadNotReady(
                    f"{self._what()} was not Ready within {timeout:g} s: {problem or 'no pods'}"
                )
            time.sleep(min(self.spec.poll_interval_s, 1.0))

    def _what(self) -> str:
        if self.spec.deploy:
            return f"Deployment {self.namespace}/{self.spec.name}"
        return f"pods {self.pod_selector} in {self.namespace}"

    def _rollout_state(self) -> tuple[str | None, bool]:
        """(what is still wrong, whether the rollout is complete)."""
        from kubernetes import client

        dep = None
        if self.spec.deploy:
            apps = client.AppsV1Api(self.api)
            dep = apps.read_namespaced_deployment(self.spec.name, self.namespace)
        return rollout_state(self.pods(), dep)
