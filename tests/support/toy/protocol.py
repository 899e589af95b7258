"""The toy load protocol ``WordCount``: what docs/extending.md walks through for a load user.

A request is ``POST /toy/count`` with ``{"words": "<n words>"}``, n drawn per request from
``load.prompt_words`` with the user's seeded random numbers; the server answers
``{"count": n}``, which becomes the record's ``output_tokens``, or ``{"error": "..."}``, a
failed record. An experiment names it ``load.user: tests.support.toy.protocol:WordCount``.

Imported only by the Locust process (a protocol imports gevent);
tests/integration/test_load_protocols.py runs Locust with it against a toy server.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness.load.protocols import Measurement, Protocol, json_object
from harness.load.sampling import draw_length
from harness.load.sse import one_line

PATH = "/toy/count"


class WordCount(Protocol):
    """Counts the words of a prompt, server side: one count per request."""

    path = PATH

    def body(self) -> str:
        words = draw_length(self.load.prompt_words, self.rng)
        return json.dumps({"words": self.prompts.prompt(words)})

    def read(self, m: Measurement, response: Any) -> None:
        body = response.read()  # to its end: the connection is reused
        m.received = len(body)
        m.elapsed = time.perf_counter() - m.started
        doc = json_object(m, body)  # sets the record's error when it is no JSON object
        if doc is None:
            return
        count = doc.get("count")
        if isinstance(count, int):
            m.output_tokens = count
        else:
            m.error = "toy: " + one_line(str(doc.get("error", "no count")))
