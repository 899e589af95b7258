"""Load at scale: a Locust master and N workers, their request records merged.

``load.workers: N`` (N >= 1) runs the load as a Locust master that owns the shape and N
workers that run the users, either as local processes (:class:`DistributedLocustRunner`,
explicit ``--master`` and ``--worker`` subprocesses rather than ``--processes``, so that each
worker is started with its own index and records file) or as Kubernetes Jobs
(:class:`KubernetesLoadJobs`: a master Job behind a Service and an indexed worker Job).

Each worker writes its own records file, ``requests.worker-<n>.csv``, flushed per row (the
locustfile picks it from ``GPUCHAOS_LOAD_RECORDS``). :func:`merge_records` sorts the rows of
all of them by start time into the run's ``requests.csv``; the runner calls it once Locust
has exited, on every exit path (a run that aborts still gets its merged records), and it can
be run again by hand on a run folder. While the load runs, :class:`LiveMerger` appends each
worker's complete rows to ``requests.csv`` as they come (for live progress and stop
conditions). Open loop: every worker draws the same arrival
schedule and sends every N-th arrival (``GPUCHAOS_LOAD_WORKER`` of
``GPUCHAOS_LOAD_WORKERS``), so together they send exactly the single-process schedule.

Module-level imports stay light: the locustfile imports the names below, and the Kubernetes
client is imported only by the Jobs code.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import LoadSpec
from harness.errors import LoadError, PlatformError
from harness.load.loadconfig import CONFIG_ENV, CONFIG_FILE
from harness.load.runner import LOCUSTFILE, LocustRunner, count_records, load_start_details
from harness.procs import die_with_parent
from harness.records import COLUMNS, OPTIONAL_COLUMNS, REQUESTS_FILE
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.platforms.kubernetes.platform import KubernetesPlatform

log = logging.getLogger(__name__)

#: Overrides the records file of one Locust process (a worker's own file).
RECORDS_ENV = "GPUCHAOS_LOAD_RECORDS"
#: This worker's index (0-based) and the number of workers.
WORKER_ENV = "GPUCHAOS_LOAD_WORKER"
WORKERS_ENV = "GPUCHAOS_LOAD_WORKERS"
WORKER_RECORDS_GLOB = "requests.worker-*.csv"
_WORKER_RECORDS_RE = re.compile(r"^requests\.worker-(\d+)\.csv$")
HEADER = COLUMNS + OPTIONAL_COLUMNS


def worker_slot() -> tuple[int, int]:
    """(index, count) of this Locust process among the workers; (0, 1) when alone."""
    count = int(os.environ.get(WORKERS_ENV) or 1)
    index = int(os.environ.get(WORKER_ENV) or 0)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"{WORKER_ENV}={index} is not below {WORKERS_ENV}={count}")
    return index, count


def worker_records_path(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / f"requests.worker-{index}.csv"


def worker_record_files(run_dir: Path) -> list[Path]:
    """The workers' records files in ``run_dir``, by worker index."""
    found = []
    for path in Path(run_dir).glob(WORKER_RECORDS_GLOB):
        match = _WORKER_RECORDS_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def _rows(path: Path) -> tuple[list[list[str]], int]:
    """The complete rows of one records file, and how many torn ones were dropped."""
    rows: list[list[str]] = []
    torn = 0
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return rows, 0
            width = len(header)
            for row in reader:
                if len(row) != width:  # a worker killed in the middle of a row
                    torn += 1
                    continue
                rows.append(dict_row(header, row))
    except OSError as exc:
        log.error("cannot read %s: %s", path, exc)
    return rows, torn


def dict_row(header: list[str], row: list[str]) -> list[str]:
    """``row`` (in ``header``'s column order) in the order of :data:`HEADER`."""
    by_name = dict(zip(header, row, strict=True))
    return [by_name.get(c, "") for c in HEADER]


def _start_key(row: list[str]) -> float:
    try:
        return float(row[0])
    except (ValueError, IndexError):
        return float("inf")


def merge_records(run_dir: Path, sources: list[Path] | None = None) -> int:
    """Merge the workers' records files into ``run_dir/requests.csv``, sorted by start time;
    returns the rows written. Rows torn by a killed worker are dropped (and logged)."""
    run_dir = Path(run_dir)
    files = worker_record_files(run_dir) if sources is None else sources
    merged: list[list[str]] = []
    for path in files:
        rows, torn = _rows(path)
        if torn:
            log.warning("%s: dropped %d incomplete rows", path, torn)
        merged.extend(rows)
    merged.sort(key=_start_key)
    target = run_dir / REQUESTS_FILE
    tmp = target.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(merged)
    os.replace(tmp, target)
    log.info("merged %d records from %d workers into %s", len(merged), len(files), target)
    return len(merged)


class LiveMerger(threading.Thread):
    """Appends the workers' complete rows to ``requests.csv`` as they are written, so that
    what reads it during the run (live progress, stop conditions) sees every worker's
    requests; :func:`merge_records` rewrites it sorted when the load stops."""

    def __init__(self, run_dir: Path, poll_s: float = 0.5) -> None:
        super().__init__(name="records-merger", daemon=True)
        self.run_dir = Path(run_dir)
        self.poll_s = poll_s
        self._offsets: dict[Path, int] = {}
        self._halt = threading.Event()
        target = self.run_dir / REQUESTS_FILE
        with open(target, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(HEADER)

    def run(self) -> None:
        while not self._halt.wait(self.poll_s):
            try:
                self.poll()
            except OSError as exc:
                log.warning("live merge of the workers' records failed: %s", exc)

    def poll(self) -> int:
        """Append the rows completed since the last poll; returns how many."""
        out: list[bytes] = []
        for path in worker_record_files(self.run_dir):
            start = self._offsets.get(path)
            with open(path, "rb") as fh:
                if start is None:  # skip the header line
                    first = fh.readline()
                    if not first.endswith(b"\n"):
                        continue
                    start = len(first)
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1  # complete lines only: a row being written waits
            if end:
                out.append(data[:end])
            self._offsets[path] = start + end
        if out:
            with open(self.run_dir / REQUESTS_FILE, "ab") as fh:
                fh.write(b"".join(out))
        return sum(chunk.count(b"\n") for chunk in out)

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DistributedLocustRunner(LocustRunner):
    """A Locust master (the shape, Locust's statistics) and ``spec.workers`` local worker
    processes (the users, each with its own records file); the same interface as
    :class:`LocustRunner`. Every process dies with the harness (parent-death signal)."""

    #: The master and the workers import Locust at the same time: give them longer.
    start_delay_s = 4.0
    #: How long the workers get to exit by themselves once the master has quit.
    worker_exit_s = 5.0

    def __init__(self, spec: LoadSpec, endpoint: str, run_dir: Path, timeline: Timeline, **kw: Any):
        if spec.workers < 1:
            raise LoadError("DistributedLocustRunner needs load.workers >= 1")
        super().__init__(spec, endpoint, run_dir, timeline, **kw)
        self.workers = spec.workers
        self.port = _free_port()
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self._merger: LiveMerger | None = None

    def command(self) -> list[str]:
        # the master sends no request: its records file is /dev/null (env execs, same pid)
        return [
            "env",
            f"{RECORDS_ENV}={os.devnull}",
            *super().command(),
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(self.port),
            "--expect-workers",
            str(self.workers),
            "--expect-workers-max-wait",
            f"{self.first_record_timeout_s:g}",
        ]

    def worker_command(self, index: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(self.port),
            "--stop-timeout",
            str(self.stop_timeout_s),
            "--loglevel",
            "WARNING",
            "--logfile",
            str(self.run_dir / f"locust.worker-{index}.log"),
        ]

    def _start_workers(self) -> None:
        env = dict(os.environ)
        env[CONFIG_ENV] = str((self.run_dir / CONFIG_FILE).resolve())
        env[WORKERS_ENV] = str(self.workers)
        package_root = str(LOCUSTFILE.resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        parent = os.getpid()
        for index in range(self.workers):
            worker_env = {
                **env,
                WORKER_ENV: str(index),
                RECORDS_ENV: str(worker_records_path(self.run_dir, index)),
            }
            try:
                proc = subprocess.Popen(
                    self.worker_command(index),
                    cwd=self.run_dir,
                    env=worker_env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent(parent),
                )
            except OSError as exc:
                raise LoadError(f"could not start Locust worker {index}: {exc}") from exc
            self.worker_procs.append(proc)
        log.info(
            "%d Locust workers started (pids %s), master on 127.0.0.1:%d",
            self.workers,
            [p.pid for p in self.worker_procs],
            self.port,
        )

    def _await_first_record(self, launched: float, already: int) -> None:
        # The master is up and load.json (with t0) is written: now the workers can read it.
        self._start_workers()
        self._merger = LiveMerger(self.run_dir)
        self._merger.start()
        super()._await_first_record(launched, already)

    def record_count(self) -> int:
        return sum(count_records(p) for p in worker_record_files(self.run_dir))

    def collect_records(self) -> None:
        """Stop the workers (they quit with the master; SIGINT, then SIGKILL, if not) and
        merge their records into ``requests.csv``."""
        deadline = time.monotonic() + self.worker_exit_s
        for proc in self.worker_procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        late = [p for p in self.worker_procs if p.poll() is None]
        for proc in late:
            log.warning("Locust worker pid %d still runs after the master: SIGINT", proc.pid)
            self._signal(proc, signal.SIGINT)
        deadline = time.monotonic() + self.stop_timeout_s + 3.0
        for proc in late:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("Locust worker pid %d did not stop: SIGKILL", proc.pid)
        for proc in self.worker_procs:
            self._killpg(proc)
            proc.wait()
        if self._merger is not None:
            self._merger.halt()
        merge_records(self.run_dir, worker_record_files(self.run_dir))


def make_load_runner(
    spec: LoadSpec,
    endpoint: str,
    run_dir: Path,
    timeline: Timeline,
    *,
    platform: object = None,
    **kw: Any,
) -> LocustRunner:
    """The runner for ``spec``: one Locust process, a master and local workers, or (with
    ``workers_on: kubernetes``) a master and workers as Jobs in ``platform``'s cluster."""
    if spec.workers_on == "kubernetes":
        from harness.platforms.kubernetes.platform import KubernetesPlatform

        if not isinstance(platform, KubernetesPlatform):
            raise LoadError("load.workers_on: kubernetes needs platform.kind: kubernetes")
        return KubernetesJobsRunner(spec, endpoint, run_dir, timeline, platform=platform, **kw)
    if spec.workers >= 1:
        return DistributedLocustRunner(spec, endpoint, run_dir, timeline, **kw)
    return LocustRunner(spec, endpoint, run_dir, timeline, **kw)


# -- Kubernetes Jobs ---------------------------------------------------------------------------

#: Inside the load image (workloads/load.Dockerfile): where the project is installed.
IMAGE_ROOT = "/opt/gpuchaos"
CONFIG_MOUNT = "/etc/gpuchaos"
MASTER_PORT = 5557
LOAD_COMPONENT = "load"


def parse_log_records(text: str) -> list[list[str]]:
    """Request records in a worker pod's log (the worker writes them to stdout): the
    header line and every complete row after it; other lines (warnings) are skipped."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for line in text.splitlines():
        try:
            cells = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        if header is None:
            if tuple(cells[: len(COLUMNS)]) == tuple(COLUMNS):
                header = cells
            continue
        if len(cells) == len(header) and _start_key(cells) != float("inf"):
            rows.append(dict_row(header, cells))
    return rows


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
            "env": [{"name": CONFIG_ENV, "value": f"{CONFIG_MOUNT}/{CONFIG_FILE}"}, *env],
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
            "data": {CONFIG_FILE: json.dumps(doc, indent=2) + "\n"},
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


class KubernetesJobsRunner(LocustRunner):
    """Locust as Kubernetes Jobs (:class:`KubernetesLoadJobs`) behind the interface of
    :class:`LocustRunner`: ``start`` creates the Jobs and returns once a worker's log holds a
    request record; while the load runs the worker logs are read every ``poll_s`` and their
    new rows appended to ``requests.csv`` (live progress, stop conditions, the steady-state
    probes); ``stop`` reads the logs a last time, merges them sorted, and deletes the Jobs,
    Service and ConfigMap, also when the run was aborted. The load goes to the workload's
    in-cluster Service URL (``endpoint``, a port-forward on 127.0.0.1, is not used)."""

    poll_s = 2.0
    #: how long a master Job state read is reused by :attr:`running`
    state_ttl_s = 1.0

    def __init__(
        self,
        spec: LoadSpec,
        endpoint: str,
        run_dir: Path,
        timeline: Timeline,
        *,
        platform: KubernetesPlatform,
        **kw: Any,
    ) -> None:
        super().__init__(spec, platform.service_url, run_dir, timeline, **kw)
        self.start_delay_s = spec.workers_start_s
        self.jobs = KubernetesLoadJobs(
            platform, spec, self.run_dir, spec.workers_image, platform.service_url
        )
        self._rows: dict[int, list[list[str]]] = {}  # worker index -> records read so far
        self._appended: dict[int, int] = {}  # worker index -> rows appended to requests.csv
        self._poll_lock = threading.Lock()
        self._halt = threading.Event()
        self._poller: threading.Thread | None = None
        self._state: tuple[float, str] | None = None  # (monotonic time, master state)

    @property
    def running(self) -> bool:
        return self._t0 is not None and not self._ended and self._master_state() == "running"

    def _master_state(self, fresh: bool = False) -> str:
        now = time.monotonic()
        if not fresh and self._state is not None and now - self._state[0] < self.state_ttl_s:
            return self._state[1]
        try:
            state = self.jobs.master_state()
        except Exception as exc:  # an API blip is not the end of the load
            log.warning("cannot read the Locust master Job: %s", exc)
            state = self._state[1] if self._state is not None else "running"
        self._state = (now, state)
        return state

    def start(self) -> None:
        """Create the Jobs and return once a request record is in a worker's log; raises
        :class:`LoadError` (after deleting the Jobs) when the master ends first or no record
        comes within ``workers_start_s`` plus ``first_record_timeout_s``."""
        if self._t0 is not None:
            raise LoadError("load already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.records_path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(HEADER)
        t0 = time.time() + self.start_delay_s
        self._t0 = t0
        try:
            names = self.jobs.create(t0)
            log.info(
                "Locust as Jobs in %s (%s) against %s; load starts in %.0f s",
                self.jobs.namespace,
                ", ".join(names),
                self.endpoint,
                self.start_delay_s,
            )
            details = load_start_details(
                self.spec,
                self.endpoint,
                workers=self.spec.workers,
                workers_on="kubernetes",
                jobs=names,
            )
            self.timeline.emit("load_start", "locust", details, at=t0)
            self._schedule_phases(t0)
            self._await_jobs_record(t0)
        except BaseException:  # a failed start, Ctrl-C: delete what was created
            self.stop(grace_s=2.0)
            raise
        self._poller = threading.Thread(target=self._poll_loop, name="jobs-records", daemon=True)
        self._poller.start()

    def _await_jobs_record(self, t0: float) -> None:
        if self.jobs.platform.dry_run:
            return
        deadline = t0 + self.first_record_timeout_s
        while True:
            try:
                if self.poll():
                    return
            except Exception as exc:
                log.debug("worker logs not readable yet: %s", exc)
            state = self._master_state(fresh=True)
            if state != "running":
                raise LoadError(
                    f"the Locust master Job {self.jobs.name}-master {state} before any "
                    f"request; see its pod's log (kubectl logs -n {self.jobs.namespace} "
                    f"job/{self.jobs.name}-master)"
                )
            if time.time() > deadline:
                raise LoadError(
                    f"no request record in the Locust worker pods' logs "
                    f"{self.first_record_timeout_s:g} s after the load start (the Jobs had "
                    f"{self.start_delay_s:g} s to start: load.workers_start_s)"
                )
            time.sleep(1.0)

    def poll(self) -> int:
        """Read the worker logs and append the rows not seen before to ``requests.csv``;
        returns how many."""
        with self._poll_lock:
            out: list[list[str]] = []
            for index, rows in self.jobs.read_worker_logs().items():
                if len(rows) >= len(self._rows.get(index, [])):
                    self._rows[index] = rows
                done = self._appended.get(index, 0)
                new = self._rows[index][done:]
                out.extend(new)
                self._appended[index] = done + len(new)
            if out:
                with open(self.records_path, "a", newline="", encoding="utf-8") as fh:
                    csv.writer(fh).writerows(out)
            return len(out)

    def _poll_loop(self) -> None:
        while not self._halt.wait(self.poll_s):
            try:
                self.poll()
            except Exception as exc:
                log.warning("reading the Locust worker logs failed: %s", exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the master Job to finish (the shape ended); ``False`` on timeout."""
        if self._t0 is None:
            return False
        done = self.jobs.wait(float("inf") if timeout is None else timeout)
        return done and not self._interrupted

    def record_count(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Read the worker logs a last time, merge them into ``requests.csv`` (sorted) and
        delete the Jobs, Service and ConfigMap; emits ``load_end`` once. Idempotent, and
        safe to call again after being interrupted: later calls finish the job."""
        if self._ended or (self._t0 is None and not self.jobs.created):
            return self.returncode
        for timer in self._timers:
            timer.cancel()
        self._halt.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join()
        state = self._master_state(fresh=True) if self.jobs.created else "failed"
        if self._exited_by_itself is None:
            self._exited_by_itself = state != "running"
        if state == "running":
            self._interrupted = True  # cut short: the Jobs are deleted under it
        try:
            with self._poll_lock:
                self.collect_records()
        finally:
            self.jobs.delete()
        with self._lock:
            if self._ended:
                return self.returncode
            self._ended = True
            self.returncode = {"succeeded": 0, "failed": 1}.get(state)
        records = count_records(self.records_path)
        log.info("Locust Jobs ended (%s), %d request records", state, records)
        self.timeline.emit(
            "load_end",
            "locust",
            {
                "returncode": self.returncode,
                "records": records,
                "exited_by_itself": self._exited_by_itself,
                "killed": False,
                "workers_on": "kubernetes",
            },
        )
        return self.returncode

    def collect_records(self) -> None:
        """Merge the worker logs (read now, else as last read) into ``requests.csv``."""
        self.jobs.collect(self._rows)
