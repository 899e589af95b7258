"""The Locust side of the load: closed- and open-loop recording users, and the shape.

Runs only inside a Locust process started by a runner of :mod:`harness.load`
(``python -m locust -f harness/load/locustfile.py``), never imported by the harness. The
config comes from the JSON file named by ``GPUCHAOS_LOAD_CONFIG``
(:mod:`harness.load.userconfig`); the request and its record are
:class:`~harness.load.recording.RecordingUser`'s.

Every request becomes exactly one row of ``requests.csv`` (written as it ends) and one
entry in Locust's own statistics, failures and requests cut short by a stop included. In
open loop, so does every arrival of the schedule, sent or not (:class:`Arrivals`).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent.pool import Group
from locust import LoadTestShape, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from harness.load.recording import (
    PROTOCOL,
    ROWS,
    Measurement,
    RecordingUser,
    not_sent,
    record,
)
from harness.load.sampling import schedule
from harness.load.shapes import next_change, users_at
from harness.load.userconfig import LOAD, PHASES, SHAPE, START, WORKER, WORKERS

log = logging.getLogger(__name__)

#: Requests in flight, each in its own greenlet (see ``ClosedLoopUser.complete``).
INFLIGHT = Group()
#: Set once Locust starts stopping the run (end of the shape or SIGINT).
STOPPING = gevent.event.Event()
#: A user-count change due within this many seconds is waited for inside ``tick``.
TICK_LOOKAHEAD_S = 1.1
#: Open loop: the load stops this long after the schedule's end, so its last arrival (due
#: at the end itself) is not cut off by the stop; one still not dispatched by then is behind.
OPEN_END_GRACE_S = 0.1


class ClosedLoopUser(RecordingUser):
    """Closed loop: each user sends a request, waits for the answer (and ``wait_s``), repeats.

    The requests run in one greenlet per user (in ``INFLIGHT``), not in the user's own, so a
    user stopped mid-request (a ramp-down, the end of the run, a kill after
    ``--stop-timeout``) never cuts it short: it completes and is recorded, and the loop starts
    nothing after it. One long-lived greenlet rather than one per request: spawning and joining
    a greenlet per request cost about a sixth of the client's time per request.
    """

    wait_time = constant(LOAD.wait_s)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._stop_requested = False

    def stop(self, force: bool = False) -> bool:
        self._stop_requested = True  # Locust stops this user: no new request from its loop
        return bool(super().stop(force))

    @task
    def complete(self) -> None:
        if STOPPING.is_set() or self._stop_requested:  # the run is ending: start nothing new
            raise StopUser()
        loop = INFLIGHT.spawn(self._request_loop)
        try:
            loop.join()
        finally:  # killed while waiting: the loop finishes its request and ends
            self._stop_requested = True
        raise StopUser()

    def _request_loop(self) -> None:
        wait_s = LOAD.wait_s
        while not (self._stop_requested or STOPPING.is_set()):
            answered = self._measured_request()
            if wait_s > 0:
                gevent.sleep(wait_s)
            elif not answered:
                gevent.sleep(0)  # a failure without I/O wait must not starve other greenlets


class Arrivals:
    """This process's share of the open-loop schedule (unix seconds), each arrival handed
    out once, so each becomes exactly one record.

    The dispatcher sends an arrival or, when it can no longer be sent (its lag already
    exceeds ``request_timeout_s``), records it as not sent. When the load stops, every
    arrival due by then that the dispatcher did not reach (it was behind, it was killed, or
    it never started: Locust came up after the schedule ended) is recorded as not sent too;
    later ones were never due. A worker owns every ``WORKERS``-th arrival of the schedule.
    """

    def __init__(self) -> None:
        self.t0: float | None = None
        #: unix time Locust began stopping the load (test_stopping)
        self.stopped_at: float | None = None
        self._rest: Iterator[float] | None = None
        self._head: float | None = None

    def start(self, t0: float) -> None:
        """Draw the schedule from its beginning (once; later calls do nothing)."""
        if self._rest is None:
            self.t0 = t0
            own = (o for n, o in enumerate(schedule(LOAD)) if n % WORKERS == WORKER)
            self._rest = (t0 + offset for offset in own)
            self.pop()

    def head(self) -> float | None:
        """The next arrival not yet accounted for; ``None`` when none is left."""
        return self._head

    def pop(self) -> None:
        """The head is accounted for (sent, or recorded)."""
        assert self._rest is not None
        self._head = next(self._rest, None)

    def close(self, environment: Environment, name: str, url: str) -> int:
        """Record as not sent every arrival due by the stop (or now) not accounted for."""
        if self.t0 is None:
            return 0
        now = time.time()
        cutoff = now if self.stopped_at is None else min(self.stopped_at, now)
        count = 0
        while (scheduled := self._head) is not None and scheduled <= cutoff:
            record(not_sent(scheduled, self.t0, now), environment, name, url)
            self.pop()
            count += 1
        if count:
            log.warning("%d scheduled arrivals were not sent: the generator fell behind", count)
        return count


ARRIVALS = Arrivals()


class OpenLoopUser(RecordingUser):
    """Open loop: one dispatcher sends requests on a schedule holding the shape's rate.

    Arrivals never wait for answers, so a slow server gets as much load as a fast one. At
    most ``max_in_flight`` requests are on the wire at once (the connection pool); later
    arrivals wait in the client queue (recorded as ``queue_ms``). An arrival dispatched
    late, because the generator itself fell behind, records its lag (``lag_ms``); one it
    can no longer send is recorded as ``not sent: generator behind``. Every record starts
    at its arrival's scheduled time, so its latency counts the lag and the queue.
    """

    wait_time = constant(0)
    concurrency = LOAD.max_in_flight

    @task
    def dispatch(self) -> None:
        slots = gevent.lock.BoundedSemaphore(LOAD.max_in_flight)
        timeout_s = LOAD.request_timeout_s
        ARRIVALS.start(self._t0)
        while (scheduled := ARRIVALS.head()) is not None:
            now = time.time()
            if scheduled > now:
                STOPPING.wait(scheduled - now)
                now = time.time()
            else:
                gevent.sleep(0)  # behind: the requests already dispatched run meanwhile
            if STOPPING.is_set():
                break  # the rest: due by the stop, recorded as not sent (ARRIVALS.close)
            if now - scheduled > timeout_s:
                self._finish(not_sent(scheduled, self._t0, now))
            else:
                INFLIGHT.spawn(self._queued_request, scheduled, now, slots)
            ARRIVALS.pop()
        STOPPING.wait()
        ARRIVALS.close(self.environment, self._name, self._url)
        raise StopUser()

    def _queued_request(
        self, scheduled: float, dispatched: float, slots: gevent.lock.BoundedSemaphore
    ) -> None:
        left = LOAD.request_timeout_s - (time.time() - scheduled)
        try:
            acquired = left > 0 and slots.acquire(timeout=left)
        except BaseException:  # killed while queued, at exit after --stop-timeout
            self._finish(self._unsent(scheduled, dispatched, "cancelled: load stopped"))
            raise
        if not acquired:
            self._finish(self._unsent(scheduled, dispatched, "timeout: client queue full"))
            return
        try:
            self._measured_request(scheduled, dispatched)
        finally:
            slots.release()

    def _unsent(self, scheduled: float, dispatched: float, error: str) -> Measurement:
        """A dispatched arrival that left the client queue without being sent."""
        now = time.time()
        phase = PHASES.at(scheduled - self._t0)
        m = Measurement(start=scheduled, started=0.0, phase=phase, error=error)
        m.elapsed = max(0.0, now - scheduled)
        m.lag_ms = max(0.0, dispatched - scheduled) * 1000.0
        m.queue_ms = max(0.0, now - dispatched) * 1000.0
        return m


# Only the mode's own user class runs (Locust spawns every non-abstract User of the file).
ClosedLoopUser.abstract = LOAD.mode != "closed"
OpenLoopUser.abstract = LOAD.mode != "open"


class GpuchaosShape(LoadTestShape):
    """The configured shape on the harness's clock; ends after the shape's duration.

    The clock is the load's ``t0``, so user counts, the phase in each record and the phase
    events on the timeline agree. The first tick comes when Locust is ready (imported, its
    workers connected): it picks ``t0`` (:class:`~harness.load.userconfig.LoadStart`) and
    waits for it; a change due before the next tick (Locust ticks about once a second) is waited
    for, so counts change on time even for boundaries that are not whole seconds. In open
    loop there is a single dispatcher user for the whole load.
    """

    def tick(self) -> tuple[int, float] | None:
        t0 = START.pick()
        now = time.time() - t0
        change = next_change(SHAPE, max(now, 0.0))
        if now < 0 or (change is not None and change - now < TICK_LOOKAHEAD_S):
            target = 0.0 if now < 0 else change
            assert target is not None
            gevent.sleep(max(0.0, target - now))
            now = max(time.time() - t0, target)
        users = users_at(SHAPE, now)
        if users is None:
            if LOAD.mode == "open":  # an arrival due at the very end is dispatched first
                gevent.sleep(OPEN_END_GRACE_S)
            return None
        if LOAD.mode == "open":
            return LOAD.workers or 1, SHAPE.spawn_rate  # one dispatcher per worker
        return users, SHAPE.spawn_rate


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    """SIGINT ends the run the way the end of the shape does.

    The handler runs in a greenlet of its own (Python's default would raise
    KeyboardInterrupt in whatever greenlet runs, possibly a user mid-request) and stops
    the shape greenlet; Locust's headless main then stops the users (letting in-flight
    requests finish within ``--stop-timeout``) and writes its summary, exactly once.
    """

    def _stop() -> None:
        runner = environment.runner
        if runner is None or runner.state in (STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED):
            return
        log.warning("SIGINT: stopping the load")
        if runner.shape_greenlet is not None:
            runner.shape_greenlet.kill(block=False)
        else:
            runner.quit()

    gevent.signal_handler(signal.SIGINT, _stop)


@events.test_stopping.add_listener
def _on_test_stopping(**_kwargs: Any) -> None:
    if ARRIVALS.stopped_at is None:
        ARRIVALS.stopped_at = time.time()
    STOPPING.set()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    # Requests still in flight (their users are gone) get --stop-timeout to finish, then
    # are cancelled; either way each leaves its record.
    if len(INFLIGHT):
        INFLIGHT.join(timeout=environment.stop_timeout or 0.0)
        INFLIGHT.kill(block=True, timeout=5.0)
    if LOAD.mode == "open" and not isinstance(environment.runner, MasterRunner):
        # arrivals due that no dispatcher reached (none started: the schedule had ended)
        t0 = START.known()
        if t0 is not None:
            ARRIVALS.start(t0)
            url = (environment.host or "").rstrip("/") + PROTOCOL.path
            ARRIVALS.close(environment, PROTOCOL.path, url)
    ROWS.flush()
    # Locust's CSV writer refreshes the stats files once a second and not at exit: give it
    # one more pass so the summary holds every request.
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)
