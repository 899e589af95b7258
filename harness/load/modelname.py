"""The model a chat request names when ``load.model`` is unset: the first of ``GET /v1/models``.

Why: an OpenAI-compatible server (vLLM, TGI, a gateway) refuses a request for a model it does
not serve, and an experiment pointed at one should not have to know the name of the model
behind its URL. The chat protocols (:mod:`harness.load.protocols`) ask here on their first
request (a protocol's ``__init__`` sends nothing): once per Locust process and host, the
users that start at the same time waiting for that one answer. A failed look-up is not kept:
the next request asks again (a server still starting up), and each request it fails is a
record whose error says why (:class:`RequestNotSent`).

Imported only inside the Locust process (it imports gevent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from gevent.lock import Semaphore

from harness.load.sse import one_line

log = logging.getLogger(__name__)

#: Where an OpenAI-compatible server lists its models, under the base URL.
MODELS_PATH = "/v1/models"
#: The model found per base URL, in this process.
_FOUND: dict[str, str] = {}
_ASKING = Semaphore()


class RequestNotSent(Exception):
    """A request could not be built; its record's error is this text (no traceback logged)."""


def first_model(doc: object) -> str | None:
    """The ``id`` of the first entry of ``data`` in a ``/v1/models`` answer; ``None`` if none."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        model = data[0].get("id")
        if isinstance(model, str) and model:
            return model
    return None


def discovered_model(base_url: str, get: Callable[[str], tuple[int, bytes]]) -> str:
    """The first model ``GET {base_url}/v1/models`` lists, asked once per process and host.

    ``get`` is the user's GET of its host (connection errors propagate: the request is
    recorded as one). Raises :class:`RequestNotSent` when the answer is no list of models.
    """
    model = _FOUND.get(base_url)
    if model is not None:
        return model
    with _ASKING:  # the first user asks; the others wait for its answer
        model = _FOUND.get(base_url)
        if model is not None:
            return model
        url = base_url + MODELS_PATH
        status, body = get(MODELS_PATH)
        text = one_line(body.decode("utf-8", "replace"))
        if status != 200:
            raise RequestNotSent(
                f"load.model is unset and GET {url} answered HTTP {status}: {text}"
            )
        try:
            model = first_model(json.loads(body))
        except ValueError:
            model = None
        if model is None:
            raise RequestNotSent(f"load.model is unset and GET {url} lists no model: {text}")
        _FOUND[base_url] = model
    log.warning("load.model is unset: sending model %r, the first of GET %s", model, url)
    return model
