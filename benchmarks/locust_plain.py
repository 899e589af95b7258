"""The baseline of ``make bench-load``: a plain Locust ``FastHttpUser`` with no recording.

Runs only inside ``python -m locust -f benchmarks/locust_plain.py`` started by
``benchmarks/bench_load.py``. Each user posts the body in ``BENCH_BODY`` to ``BENCH_PATH`` in a
closed loop (no wait) and lets Locust read the whole answer; ``BENCH_USERS`` users for
``BENCH_DURATION_S`` seconds.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, LoadTestShape, constant, task

BODY = os.environ["BENCH_BODY"]
PATH = os.environ.get("BENCH_PATH", "/v1/completions")
USERS = int(os.environ["BENCH_USERS"])
DURATION_S = float(os.environ["BENCH_DURATION_S"])
HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def complete(self) -> None:
        self.client.post(PATH, data=BODY, headers=HEADERS)


class ConstantUsers(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        return (USERS, float(USERS)) if self.get_run_time() < DURATION_S else None
