"""Locust as Kubernetes Jobs: the objects, created, watched, read and deleted.

``load.workers_on: kubernetes`` runs the load inside the cluster: a ConfigMap with the
load config, a Locust master Job behind a Service, and an indexed Job of workers that
write their request records to stdout (the contract is in :mod:`harness.load.workerenv`).
:class:`KubernetesLoadJobs` makes exactly these objects through the official client and
deletes exactly them; :mod:`harness.load.k8s_runner` drives them as a load runner, and
the dry-run planner plans them. The Kubernetes client is imported only inside the methods
that call it.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import LoadSpec
from harness.errors import LoadError, PlatformError
from harness.load.loadconfig import CONFIG_ENV
from harness.load.merge import HEADER, merge_records, parse_log_records
from harness.load.workerenv import RECORDS_ENV, WORKER_ENV, WORKERS_ENV, worker_records_path
from harness.rundir import LOAD_CONFIG_FILE

if TYPE_CHECKING:
    from harness.platforms.kubernetes.platform import KubernetesPlatform

log = logging.getLogger(__name__)

#: Inside the load image (workloads/load.Dockerfile): where the project is installed.
IMAGE_ROOT = "/opt/gpuchaos"
CONFIG_MOUNT = "/etc/gpuchaos"
MASTER_PORT = 5557
LOAD_COMPONENT = "load"


class KubernetesLoadJobs:
    """Locust as Kubernetes Jobs in the platform's namespace: a ConfigMap with the load
    config, a master Job behind a Service, and an indexed Job of ``spec.workers`` workers
    that write their records to stdout. :meth:`collect` reads the worker pods' logs into
    ``requests.worker-<n>.csv`` and merges them; :meth:`delete` removes exactly what
    :meth:`create` made. With the platform's dry run, nothing is created (the plan says what
    would be)."""

    def __init__(
        self,
        platform: KubernetesPlatform,
        spec: LoadSpec,
        run_dir: Path,
        image: str,
        url: str,
        name: str = "gpuchaos-load",
    ) -> None:
        if spec.workers < 1:
            raise LoadError("Locust as Kubernetes Jobs needs load.workers >= 1")
        self.platform = platform
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.image = image
        self.url = url.rstrip("/")
        self.name = name
        self.namespace = platform.namespace
        self.created: list[tuple[str, str, str]] = []  # (kind, name, uid)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "gpuchaos",
            "app.kubernetes.io/component": LOAD_COMPONENT,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/managed-by": "gpuchaos",
        }

    def _meta(self, name: str, role: str | None = None) -> dict[str, Any]:
        labels = dict(self.labels)
        if role:
            labels["gpuchaos/locust-role"] = role
        return {"name": name, "namespace": self.namespace, "labels": labels}

    def _container(self, role: str, args: list[str], env: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "name": f"locust-{role}",
            "image": self.image,
            "command": ["sh", "-c"],
            "args": [" ".join(args)],
            "env": [{"name": CONFIG_ENV, "value": f"{CONFIG_MOUNT}/{LOAD_CONFIG_FILE}"}, *env],
            "volumeMounts": [{"name": "load-config", "mountPath": CONFIG_MOUNT}],
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
        }

    def _job(self, name: str, role: str, container: dict[str, Any], count: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "completions": count,
            "parallelism": count,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**self.labels, "gpuchaos/locust-role": role}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "load-config", "configMap": {"name": f"{self.name}-config"}}
                    ],
                },
            },
        }
        if role == "worker":
            spec["completionMode"] = "Indexed"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self._meta(name, role),
            "spec": spec,
        }

    def manifests(self, t0: float) -> list[dict[str, Any]]:
        """ConfigMap, master Service, master Job and worker Job for a load starting at
        ``t0`` (unix seconds)."""
        locustfile = f"{IMAGE_ROOT}/harness/load/locustfile.py"
        stop_timeout = str(max(1, round(min(self.spec.request_timeout_s, 5.0))))
        doc = {
            "load": self.spec.model_dump(mode="json"),
            "records_path": "/dev/null",  # the master sends no requests
            "t0": t0,
        }
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self._meta(f"{self.name}-config"),
            "data": {LOAD_CONFIG_FILE: json.dumps(doc, indent=2) + "\n"},
        }
        master_name = f"{self.name}-master"
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._meta(master_name, "master"),
            "spec": {
                "selector": {**self.labels, "gpuchaos/locust-role": "master"},
                "ports": [{"name": "locust", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
            },
        }
        master_args = [
            "exec python -m locust -f",
            locustfile,
            "--headless --only-summary --master",
            f"--expect-workers {self.spec.workers}",
            f"--master-bind-port {MASTER_PORT}",
            f"--host {self.url}",
            f"--stop-timeout {stop_timeout}",
            "--exit-code-on-error 0 --loglevel WARNING",
        ]
        worker_args = [
            f"{WORKER_ENV}=$JOB_COMPLETION_INDEX {RECORDS_ENV}=/dev/stdout",
            "exec python -m locust -f",
            locustfile,
            "--worker",
            f"--master-host {master_name}.{self.namespace}.svc",
            f"--master-port {MASTER_PORT}",
            f"--stop-timeout {stop_timeout}",
            "--loglevel WARNING --logfile /tmp/locust.log",
        ]
        worker_env = [{"name": WORKERS_ENV, "value": str(self.spec.workers)}]
        master = self._job(master_name, "master", self._container("master", master_args, []), 1)
        workers = self._job(
            f"{self.name}-workers",
            "worker",
            self._container("worker", worker_args, worker_env),
            self.spec.workers,
        )
        return [config, service, master, workers]

    def create(self, t0: float) -> list[str]:
        """Create the objects (or, in a dry run, plan them); returns their names."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        self.platform.safety.namespace(self.namespace)
        docs = self.manifests(t0)
        if self.platform.dry_run:
            for doc in docs:
                self.platform.plan.append(
                    f"would create {doc['kind']} {self.namespace}/{doc['metadata']['name']}"
                )
            return [d["metadata"]["name"] for d in docs]
        api = self.platform.api
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        creators: dict[str, Any] = {
            "ConfigMap": core.create_namespaced_config_map,
            "Service": core.create_namespaced_service,
            "Job": batch.create_namespaced_job,
        }
        for doc in docs:
            try:
                made = creators[doc["kind"]](self.namespace, doc)
            except ApiException as exc:
                what = f"{doc['kind']} {self.namespace}/{doc['metadata']['name']}"
                if exc.status == 409:
                    raise LoadError(f"{what} exists already (another run's load?)") from exc
                raise LoadError(f"cannot create {what}: {exc.reason}") from exc
            self.created.append((doc["kind"], made.metadata.name, made.metadata.uid))
            log.info("created %s %s/%s", doc["kind"], self.namespace, made.metadata.name)
        return [name for _, name, _ in self.created]

    def finished(self) -> bool:
        """Whether the master Job has succeeded or failed."""
        return self.master_state() != "running"

    def wait(self, timeout_s: float, poll_s: float = 1.0) -> bool:
        """Wait for the master Job to finish; False on timeout."""
        if self.platform.dry_run:
            return True
        deadline = time.monotonic() + timeout_s
        while not self.finished():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def read_worker_logs(self) -> dict[int, list[list[str]]]:
        """The records in each worker pod's log now, by completion index (complete lines
        only: a row being written waits for the next read). A pod whose log cannot be read
        yet (Pending, or gone) is left out."""
        from kubernetes.client.exceptions import ApiException

        if self.platform.dry_run:
            return {}
        core = self.platform.core()
        pods = core.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.name},gpuchaos/locust-role=worker",
        ).items
        found: dict[int, list[list[str]]] = {}
        for position, pod in enumerate(sorted(pods, key=lambda p: p.metadata.name)):
            annotations = pod.metadata.annotations or {}
            index = int(annotations.get("batch.kubernetes.io/job-completion-index", position))
            try:
                text = core.read_namespaced_pod_log(pod.metadata.name, self.namespace) or ""
            except ApiException as exc:
                log.debug("log of worker pod %s: %s", pod.metadata.name, exc.reason)
                continue
            found[index] = parse_log_records(text[: text.rfind("\n") + 1])
        return found

    def collect(self, known: dict[int, list[list[str]]] | None = None) -> int:
        """Read each worker pod's log into ``requests.worker-<n>.csv`` and merge them all
        into ``requests.csv``; returns the merged rows. ``known``: rows read before (live),
        kept for a worker whose log cannot be read now (an aborted run, a pod gone)."""
        if self.platform.dry_run:
            return 0
        rows = {index: list(r) for index, r in (known or {}).items()}
        try:
            for index, fresh in self.read_worker_logs().items():
                if len(fresh) >= len(rows.get(index, [])):
                    rows[index] = fresh
        except Exception as exc:
            log.error("could not read the Locust worker logs: %s; merging what was read", exc)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        for index in sorted(rows):
            path = worker_records_path(self.run_dir, index)
            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(HEADER)
                writer.writerows(rows[index])
            files.append(path)
            log.info("Locust worker %d: %d records", index, len(rows[index]))
        return merge_records(self.run_dir, files)

    def master_state(self) -> str:
        """'running', 'succeeded' or 'failed': the master Job's state."""
        from kubernetes import client

        job = client.BatchV1Api(self.platform.api).read_namespaced_job(
            f"{self.name}-master", self.namespace
        )
        status = job.status
        if status and (status.succeeded or 0) > 0:
            return "succeeded"
        if status and (status.failed or 0) > 0:
            return "failed"
        return "running"

    def delete(self) -> None:
        """Delete what :meth:`create` made (only objects whose uid still matches)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self.platform.api if self.created else None
        for kind, name, uid in reversed(self.created):
            body = client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=uid), propagation_policy="Background"
            )
            try:
                if kind == "Job":
                    client.BatchV1Api(api).delete_namespaced_job(name, self.namespace, body=body)
                elif kind == "Service":
                    client.CoreV1Api(api).delete_namespaced_service(name, self.namespace, body=body)
                elif kind == "ConfigMap":
                    client.CoreV1Api(api).delete_namespaced_config_map(
                        name, self.namespace, body=body
                    )
                else:
                    raise PlatformError(f"cannot delete a {kind}")
                log.info("deleted %s %s/%s", kind, self.namespace, name)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log.error("could not delete %s %s: %s", kind, name, exc.reason)
        self.created.clear()
