"""The Locust side of the load: closed- and open-loop recording users, and the shape.

Runs only inside a Locust process started by a runner of :mod:`harness.load`
(``python -m locust -f harness/load/locustfile.py``), never imported by the harness. The
config comes from the JSON file named by ``GPUCHAOS_LOAD_CONFIG``
(:mod:`harness.load.userconfig`); the request and its record are
:class:`~harness.load.recording.RecordingUser`'s.

Every request becomes exactly one row of ``requests.csv`` (written as it ends) and one
entry in Locust's own statistics, failures and requests cut short by a stop included.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from typing import Any

import gevent
import gevent.event
import gevent.lock
from gevent.pool import Group
from locust import LoadTestShape, constant, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING
from locust.stats import CSV_STATS_INTERVAL_SEC

from harness.load.recording import ROWS, Measurement, RecordingUser
from harness.load.sampling import arrivals
from harness.load.shapes import next_change, users_at
from harness.load.userconfig import LOAD, PHASES, SHAPE, T0, WORKER, WORKERS

log = logging.getLogger(__name__)

#: Requests in flight, each in its own greenlet (see ``ClosedLoopUser.complete``).
INFLIGHT = Group()
#: Set once Locust starts stopping the run (end of the shape or SIGINT).
STOPPING = gevent.event.Event()
#: A user-count change due within this many seconds is waited for inside ``tick``.
TICK_LOOKAHEAD_S = 1.1


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


class OpenLoopUser(RecordingUser):
    """Open loop: one dispatcher sends requests on a schedule holding the shape's rate.

    Arrivals never wait for answers, so a slow server gets as much load as a fast one. At
    most ``max_in_flight`` requests are on the wire at once (the connection pool); later
    arrivals wait in the client queue, and that wait is both recorded (``queue_ms``) and
    counted in their latency, which starts at the scheduled send time.
    """

    wait_time = constant(0)
    concurrency = LOAD.max_in_flight

    @task
    def dispatch(self) -> None:
        slots = gevent.lock.BoundedSemaphore(LOAD.max_in_flight)
        rng = random.Random(f"{LOAD.seed}:arrivals")
        # workers draw the whole schedule from 0 and each sends every WORKERS-th arrival
        begin = max(0.0, time.time() - T0) if WORKERS == 1 else 0.0
        for number, offset in enumerate(arrivals(SHAPE, LOAD.arrivals == "poisson", rng, begin)):
            if number % WORKERS != WORKER:
                continue
            if STOPPING.is_set():
                break
            delay = T0 + offset - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if STOPPING.is_set():
                break
            INFLIGHT.spawn(self._queued_request, T0 + offset, time.time(), slots)
        STOPPING.wait()
        raise StopUser()

    def _queued_request(
        self, scheduled: float, dispatched: float, slots: gevent.lock.BoundedSemaphore
    ) -> None:
        left = LOAD.request_timeout_s - (time.time() - scheduled)
        if left <= 0 or not slots.acquire(timeout=left):
            m = Measurement(
                start=scheduled,
                started=time.perf_counter() - (time.time() - scheduled),
                phase=PHASES.at(scheduled - T0),
                error="timeout: client queue full",
            )
            m.lag_ms = max(0.0, dispatched - scheduled) * 1000.0
            m.queue_ms = (time.time() - max(scheduled, dispatched)) * 1000.0
            self._finish(m)
            return
        try:
            self._measured_request(scheduled, dispatched)
        finally:
            slots.release()


# Only the mode's own user class runs (Locust spawns every non-abstract User of the file).
ClosedLoopUser.abstract = LOAD.mode != "closed"
OpenLoopUser.abstract = LOAD.mode != "open"


class GpuchaosShape(LoadTestShape):
    """The configured shape on the harness's clock; ends after the shape's duration.

    The clock is the harness's ``t0`` (not Locust's start), so user counts, the phase in
    each record and the phase events on the timeline agree. The first tick waits for
    ``t0``; a change due before the next tick (Locust ticks about once a second) is waited
    for, so counts change on time even for boundaries that are not whole seconds. In open
    loop there is a single dispatcher user for the whole load.
    """

    def tick(self) -> tuple[int, float] | None:
        now = time.time() - T0
        change = next_change(SHAPE, max(now, 0.0))
        if now < 0 or (change is not None and change - now < TICK_LOOKAHEAD_S):
            target = 0.0 if now < 0 else change
            assert target is not None
            gevent.sleep(max(0.0, target - now))
            now = max(time.time() - T0, target)
        users = users_at(SHAPE, now)
        if users is None:
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
    STOPPING.set()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    # Requests still in flight (their users are gone) get --stop-timeout to finish, then
    # are cancelled; either way each leaves its record.
    if len(INFLIGHT):
        INFLIGHT.join(timeout=environment.stop_timeout or 0.0)
        INFLIGHT.kill(block=True, timeout=5.0)
    ROWS.flush()
    # Locust's CSV writer refreshes the stats files once a second and not at exit: give it
    # one more pass so the summary holds every request.
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)
