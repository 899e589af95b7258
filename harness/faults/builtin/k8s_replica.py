"""Compute contention and a hang inside a pod on Kubernetes, the same names as on the local
platform (``contend_compute``, ``hang_replica``), by one of two mechanisms:

- ``exec`` (where the container allows it: the API server grants ``pods/exec``, the image
  has a shell and the harness package): contention runs the fault worker in the pod
  (``python -m harness.faults.worker``, a matmul loop on the pod's GPU, its own
  time-to-live); a hang is SIGSTOP of the server process, with a SIGCONT scheduled in the
  pod after the time-to-live. A hang by exec needs the server not to be the container's
  PID 1 (the kernel ignores SIGSTOP sent to a namespace's init from inside it): a pod with
  ``shareProcessNamespace: true`` or an init such as tini.
- ``hook``: the reference workload's fault hook (``contend``, ``hang``; ``clear`` ends
  both) through the API server's pod proxy, with the token from the platform's Secret;
  a state file lets the detached reverter send the ``clear`` when the harness dies.

``via: auto`` (the default) tries exec and falls back to the hook when exec is refused or
cannot do it (no exec permission, no shell, the server is PID 1); the fault's output says
which one acted (``via``).

What they teach: a noisy neighbour slows every step of the pod without failing anything;
a hung pod neither serves nor dies, until its liveness probe fails and the kubelet
restarts it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults.active import in_process
from harness.faults.builtin import _k8s_hook as kh
from harness.faults.builtin._kube import pick_pod, read_reply, worker_command
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import ClusterHost
from harness.faults.policy import ttl_for
from harness.faults.registry import register

log = logging.getLogger(__name__)

_CONTAINER = "server"
_EXEC_READY_TIMEOUT_S = 180.0  # torch import and the CUDA context in the pod
Via = Literal["auto", "exec", "hook"]

#: Finds the server process (``python -m workloads.*``), SIGSTOPs it unless it is PID 1, and
#: schedules its SIGCONT after the time-to-live ($1) in the pod itself.
_STOP_SCRIPT = r"""
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue  # this shell's own command line holds the pattern
  c=$(tr '\000' ' ' < "$d/cmdline" 2>/dev/null)
  case "$c" in *"-m workloads."*) p=${d#/proc/}; break;; esac
done
[ -n "$p" ] || { echo "no-server"; exit 0; }
[ "$p" = 1 ] && { echo "pid1"; exit 0; }
kill -STOP "$p" || { echo "kill-failed"; exit 0; }
(sleep "$1"; kill -CONT "$p") >/dev/null 2>&1 &
echo "stopped $p"
"""


def _via_field(what: str) -> Any:
    return Field(
        "auto",
        description=(
            f"How: 'exec' ({what}), 'hook' (the reference workload's fault hook through the "
            "pod proxy) or 'auto' (exec, else the hook when exec is refused or cannot)."
        ),
    )


def _exec(host: ClusterHost, pod: str, command: list[str], **kw: Any) -> Any:
    from kubernetes.stream import stream

    try:
        return stream(host.core().connect_get_namespaced_pod_exec, pod, host.namespace,
                      container=_CONTAINER, command=command, stderr=True, stdout=True,
                      tty=False, **kw)  # fmt: skip
    except Exception as exc:
        raise PlatformError(f"cannot exec in pod {host.namespace}/{pod}: {exc}") from exc


def _hook_fault(host: ClusterHost, fault: str, pod: str, kind: str, ttl_s: float) -> Injection:
    kh.token(host, pod)
    active = kh.clear_guard(host, fault, pod, [pod], ttl_s)
    with active.undone_on_error():
        try:
            kh.hook(host, pod, {"kind": kind})
        except ChaosError as exc:
            raise FaultNoEffect(f"{fault} {pod}", str(exc)) from None
    return Injection(pod, active, {"pod": pod, "via": "hook"})


class _PodArgs(FaultArgs):
    """What both pod faults take: the pod, the mechanism, the hold and its time-to-live."""

    replica: str | None = Field(None, description="The workload pod (default: first Ready).")
    via: Via = _via_field("see the fault")
    duration_s: float = duration_field(30.0)
    ttl_s: float | None = ttl_field()


P = TypeVar("P", bound=_PodArgs)


class _ExecElseHook(Fault[P]):
    """The shared part of a pod fault acted by exec, else by the fault hook: the target,
    the plan and the choice of mechanism (``via``); a subclass says how exec does it
    (:meth:`_by_exec`), which hook kind stands in (``hook_kind``) and how to prove it."""

    hook_kind: ClassVar[str]
    how: ClassVar[dict[str, str]]  # via -> what the plan says it would do

    def pick_target(self, ctx: FaultContext, args: P) -> str:
        return str(pick_pod(ctx.platform, None).metadata.name)

    def plan(self, ctx: FaultContext, args: P, target: str) -> dict[str, Any]:
        name = pick_pod(ctx.platform, target).metadata.name
        return {"pod": name, "would": f"would {self.how[args.via]} in pod {name}"}

    def inject(self, ctx: FaultContext, args: P, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        name = pick_pod(host, target).metadata.name
        ttl = ttl_for(args.duration_s, args.ttl_s)
        if args.via != "hook":
            try:
                return self._by_exec(host, name, ttl)
            except (PlatformError, ChaosError) as exc:
                if args.via == "exec":
                    raise
                log.info("%s in %s: exec cannot (%s); using the fault hook", self.name, name, exc)
        return _hook_fault(host, self.name, name, self.hook_kind, ttl)

    def _by_exec(self, host: ClusterHost, name: str, ttl: float) -> Injection:
        raise NotImplementedError


# -- contend_compute ------------------------------------------------------------------------


class PodContentionArgs(_PodArgs):
    replica: str | None = Field(
        None, description="The workload pod whose GPU gets a neighbour (default: first Ready)."
    )
    via: Via = _via_field("the fault worker's matmul loop in the pod")
    duration_s: float = duration_field(30.0, "0 holds it until stop_contention or the end")
    ttl_s: float | None = ttl_field()


@register
class ContendPodCompute(_ExecElseHook[PodContentionArgs]):
    """Compute contention in a pod: a neighbour loop on its GPU. exec: the fault worker's
    matmul loop in the pod (its own time-to-live); hook: the workload's ``contend``.
    Proof: exec, the loop's iterations advance; hook, the hook reports ``contend``.
    Revert: the worker stopped (its exec stream closed), or the hook's ``clear``."""

    name = "contend_compute"
    platform = "kubernetes"
    args = PodContentionArgs
    target_arg = "replica"
    revert_action = "stop_contention"
    hold = "open"
    aliases = {"pod": "replica"}
    mechanism = "exec, else hook via pod proxy"
    summary = (
        "Compute contention in a pod: a matmul loop beside the server [exec: the fault "
        "worker; where exec is refused: the hook's contend via the pod proxy]"
    )
    proves = "the loop in the pod advances (exec) or the hook reports contend (hook)"

    hook_kind = "contend"
    how = {"exec": "exec the fault worker's loop", "hook": "POST contend to the fault hook",
           "auto": "exec the fault worker's loop (else POST contend to the hook)"}  # fmt: skip

    def _by_exec(self, host: ClusterHost, name: str, ttl: float) -> Injection:
        resp = _exec(host, name, worker_command(ttl), stdin=True, _preload_content=False)

        def stop() -> None:
            try:
                resp.write_stdin(json.dumps({"op": "stop"}) + "\n")
            finally:
                resp.close()  # stdin closes: the worker exits

        try:
            warm = read_reply(resp, _EXEC_READY_TIMEOUT_S)
            if not warm.get("ok"):
                raise ChaosError(f"the fault worker in {name} failed to start: {warm.get('error')}")
        except BaseException:
            resp.close()
            raise
        active = in_process(self.name, name, stop)
        with active.undone_on_error():  # the loop stopped and the stream closed
            t0 = time.perf_counter()
            resp.write_stdin(json.dumps({"op": "burn"}) + "\n")
            read_reply(resp, 60.0)
        injection = Injection(name, active, {"pod": name, "via": "exec"},
                              latency_s=time.perf_counter() - t0)  # fmt: skip
        injection.scratch["resp"] = resp
        return injection

    def prove(
        self, ctx: FaultContext, args: PodContentionArgs, injection: Injection
    ) -> dict[str, Any] | None:
        if injection.facts["via"] == "hook":
            if not kh.hook(ctx.platform, injection.target).get("contend"):
                return None
            return {"via": "hook", "checked": "the hook reports contend"}
        resp = injection.scratch["resp"]
        counts = []
        for _ in range(2):
            resp.write_stdin(json.dumps({"op": "status"}) + "\n")
            counts.append(int(read_reply(resp, 10.0).get("iterations", 0)))
            time.sleep(0.5)
        if counts[1] <= counts[0]:
            raise FaultNoEffect(
                f"{self.name} {injection.target}", f"the loop does not advance: {counts}"
            )
        return {"via": "exec", "iterations": counts[1] - counts[0], "checked": "loop advancing"}


# -- hang_replica ---------------------------------------------------------------------------


class PodHangArgs(_PodArgs):
    replica: str | None = Field(
        None, description="The workload pod to hang (default: the first Ready by name)."
    )
    via: Via = _via_field("SIGSTOP of the server process, when it is not the container's PID 1")
    duration_s: float = duration_field(30.0, "0 holds it until resume_replica or the run ends")
    ttl_s: float | None = ttl_field()


@register
class HangPod(_ExecElseHook[PodHangArgs]):
    """A hung pod: it neither serves nor dies. exec: SIGSTOP of the server process (not
    possible when it is the container's PID 1), SIGCONT scheduled in the pod after the
    time-to-live; hook: the workload's ``hang`` (every route but the hook blocks). Proof:
    ``/health/live`` through the pod proxy gives no answer within 2 s. Revert: SIGCONT by
    exec, or the hook's ``clear``."""

    name = "hang_replica"
    platform = "kubernetes"
    args = PodHangArgs
    target_arg = "replica"
    revert_action = "resume_replica"
    hold = "open"
    aliases = {"pod": "replica"}
    mechanism = "exec SIGSTOP, else hook via pod proxy"
    summary = (
        "A hung pod (neither serves nor dies) [exec: SIGSTOP of the server unless it is "
        "PID 1; else the hook's hang via the pod proxy]"
    )
    proves = "/health/live through the pod proxy gives no answer within 2 s"

    hook_kind = "hang"
    how = {"exec": "SIGSTOP the server by exec", "hook": "POST hang to the fault hook",
           "auto": "SIGSTOP the server by exec (else POST hang to the hook)"}  # fmt: skip

    def _by_exec(self, host: ClusterHost, name: str, ttl: float) -> Injection:
        out = str(_exec(host, name, ["sh", "-c", _STOP_SCRIPT, "sh", f"{ttl:.0f}"]))
        words = out.split()
        if len(words) != 2 or words[0] != "stopped":
            raise ChaosError(f"cannot SIGSTOP the server in pod {name}: {out.strip()[:100]}")
        pid = words[1]

        def resume() -> None:
            _exec(host, name, ["kill", "-CONT", pid])

        return Injection(name, in_process(self.name, name, resume),
                         {"pod": name, "via": "exec", "pid": int(pid)})  # fmt: skip

    def prove(
        self, ctx: FaultContext, args: PodHangArgs, injection: Injection
    ) -> dict[str, Any] | None:
        t0 = time.monotonic()
        status, _ = kh.get(ctx.platform, injection.target, "health/live", kh.HANG_PROBE_TIMEOUT_S)
        if status != 0:
            injection.scratch["last"] = f"HTTP {status}"
            return None
        waited = round(time.monotonic() - t0, 2)
        return {"via": injection.facts["via"], "live_waited_s": waited,
                "checked": "/health/live gave no answer"}  # fmt: skip
