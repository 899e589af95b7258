"""What docs/extending.md promises for a load user: a protocol of your own is one
``Protocol`` subclass named by ``load.user: package.module:ClassName``, and Locust runs it
like the built-in ones (tests/support/toy/protocol.py against a toy server here).

``load.user`` is checked without importing the protocol (LoadSpec, in this process); the
registry is checked in a child Python, since protocols import gevent and only the Locust
process may.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.config import LoadSpec
from harness.config.load import BUILTIN_USERS
from harness.errors import ConfigError, LoadError
from harness.experiment import load_experiment
from harness.load.factory import make_load_runner
from harness.records import COLUMNS, OPTIONAL_COLUMNS, REPLICA_HEADER
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline
from tests.support.ports import LOOPBACK, in_thread

ROOT = Path(__file__).resolve().parents[2]
TOY_USER = "tests.support.toy.protocol:WordCount"
TOY_PATH = "/toy/count"  # tests.support.toy.protocol.PATH (not imported here: gevent)
REPLICA = "toy-server"
#: Every this-many-th request the toy server answers with an error document.
ERROR_EVERY = 5
ERROR_TEXT = "every fifth request"
SHAPE = {"kind": "step", "duration_s": 4, "start": 2, "increment": 0, "step_s": 4}


# -- the toy server ---------------------------------------------------------------------------


@dataclass
class ToyServer:
    """What the server answered, in order: (count, error) per request; connections opened."""

    url: str = ""
    answers: list[tuple[int, str]] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(server: ToyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connection

        def setup(self) -> None:
            super().setup()
            with server.lock:
                server.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            count = len(json.loads(body)["words"].split())
            with server.lock:
                failed = len(server.answers) % ERROR_EVERY == ERROR_EVERY - 1
                server.answers.append((0, ERROR_TEXT) if failed else (count, ""))
            doc = {"error": ERROR_TEXT} if failed else {"count": count}
            answer = json.dumps(doc).encode()
            self.send_response(200 if self.path == TOY_PATH else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header(REPLICA_HEADER, REPLICA)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def toy_server() -> Iterator[ToyServer]:
    server = ToyServer()
    httpd = ThreadingHTTPServer((LOOPBACK, 0), _handler(server))
    httpd.daemon_threads = True
    with in_thread(httpd, "toy-server") as port:
        server.url = f"http://{LOOPBACK}:{port}"
        yield server


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS + OPTIONAL_COLUMNS
        return list(reader)


def _locust_stats(run_dir: Path) -> dict[str, tuple[int, int]]:
    """(requests, failures) per name of Locust's own summary (``locust_stats.csv``)."""
    with open(run_dir / "locust_stats.csv", newline="", encoding="utf-8") as fh:
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(fh)
        }


# -- Locust with the toy protocol -------------------------------------------------------------


def test_locust_runs_a_protocol_named_by_module_and_class(
    toy_server: ToyServer, tmp_path: Path
) -> None:
    prompt_words = {"dist": "uniform", "min": 1, "max": 12}
    spec = LoadSpec.model_validate(
        {"user": TOY_USER, "shape": SHAPE, "prompt_words": prompt_words, "wait_s": 0.02}
    )
    runner = make_load_runner(spec, toy_server.url, tmp_path, Timeline(None))
    try:
        runner.start()
        assert runner.wait(timeout=40), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0, (tmp_path / "locust.log").read_text()

    rows = _rows(tmp_path)
    assert len(rows) >= 2 * ERROR_EVERY
    for row in rows:
        assert row["status"] == "200" and row["replica"] == REPLICA, row
        assert row["ttft_ms"] == "", row  # not a stream
        assert float(row["latency_ms"]) > 0 and row["phase"] == "step-0", row
    # every row is what the toy protocol read of one answer of the server, and nothing else
    recorded = Counter((int(r["output_tokens"]), r["error"]) for r in rows)
    answered = Counter(
        (count, f"toy: {error}" if error else "") for count, error in toy_server.answers
    )
    assert recorded == answered
    counts = {count for count, error in toy_server.answers if not error}
    assert counts <= set(range(1, 13)) and len(counts) > 3  # drawn from prompt_words
    failed = sum(1 for r in rows if r["error"])
    assert failed == len(toy_server.answers) // ERROR_EVERY
    # one row per request Locust counted, all under the protocol's path
    stats = _locust_stats(tmp_path)
    assert stats == {TOY_PATH: (len(rows), failed), "Aggregated": (len(rows), failed)}
    # the connection of each of the 2 users was reused: the body was read to its end
    assert toy_server.connections <= 4, (toy_server.connections, len(rows))


def test_a_class_that_is_no_protocol_fails_the_load_start(tmp_path: Path) -> None:
    spec = _spec("json:dumps")  # a module that is found: only the Locust process can tell
    runner = make_load_runner(spec, f"http://{LOOPBACK}:9", tmp_path, Timeline(None))
    try:
        with pytest.raises(LoadError) as err:
            runner.start()
    finally:
        runner.stop()
    assert not runner.running
    assert "load.user: 'json:dumps' is no subclass of harness.load.protocols.Protocol" in str(
        err.value
    )


# -- load.user, checked without importing the protocol ----------------------------------------


def _spec(user: str) -> LoadSpec:
    return LoadSpec.model_validate({"user": user, "shape": SHAPE})


@pytest.mark.parametrize("user", [*BUILTIN_USERS, TOY_USER])
def test_user_takes_the_built_in_names_and_a_findable_class(user: str) -> None:
    assert _spec(user).user == user
    # found, not imported: the protocol (and gevent with it) is only the Locust process's
    assert "tests.support.toy.protocol" not in sys.modules
    assert "harness.load.protocols" not in sys.modules


def test_the_default_user_is_still_the_streaming_one() -> None:
    assert LoadSpec.model_validate({"shape": SHAPE}).user == "openai-stream"


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (
            "openai-chats",
            "unknown user 'openai-chats': one of 'openai-stream', 'openai', 'kserve-v2', "
            "'openai-chat-stream', 'openai-chat'",
        ),
        ("tests.support.toy.protocol", "'package.module:ClassName' naming a Protocol subclass"),
        ("toy protocol:WordCount", "unknown user 'toy protocol:WordCount'"),
        ("tests.support.toy.nosuch:WordCount", "no module 'tests.support.toy.nosuch' can be"),
        ("nosuchpackage.protocols:Echo", "no module 'nosuchpackage.protocols' can be imported"),
    ],
)
def test_an_unknown_user_is_one_clear_error(user: str, message: str) -> None:
    with pytest.raises(ValueError, match="user") as err:
        _spec(user)
    assert message in str(err.value)


def test_gpuchaos_validate_names_the_field_of_an_unknown_user(tmp_path: Path) -> None:
    text = (ROOT / "experiments" / "traffic-spike.yaml").read_text()
    assert "user: openai-stream" in text
    path = tmp_path / "exp.yaml"
    path.write_text(text.replace("user: openai-stream", "user: mypkg.protocols:Echo", 1))
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "load.user" in msg and "\n" not in msg
    assert "no module 'mypkg.protocols' can be imported" in msg


# -- the registry (in a child: protocols import gevent) ---------------------------------------

REGISTRY_CHECK = textwrap.dedent(
    """
    import json
    from harness.errors import ConfigError, LoadError
    from harness.load import protocols as p
    from tests.support.toy.protocol import WordCount

    out = {"registered": sorted(p.registered())}
    out["toy"] = p.protocol_class("tests.support.toy.protocol:WordCount") is WordCount
    out["builtin"] = p.protocol_class("openai").__name__
    for user in ["nosuch", "tests.support.toy.protocol:Nothing", "json:dumps"]:
        try:
            p.protocol_class(user)
        except ConfigError as exc:
            out.setdefault("errors", []).append(str(exc))
    other = type("Other", (p.Protocol,), {})
    tries = [("openai", WordCount), ("toy-word-count", WordCount)]
    tries += [("toy-word-count", WordCount), ("toy-word-count", other)]
    for name, cls in tries:
        try:
            p.register_protocol(name)(cls)
            out.setdefault("ok", []).append(name)
        except p.DuplicateProtocol as exc:
            out.setdefault("duplicate", []).append(str(exc))
    print(json.dumps(out))
    """
)


def test_the_registry_refuses_a_duplicate_name_and_resolves_classes() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", REGISTRY_CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["registered"] == sorted(BUILTIN_USERS)  # the config's names, and no other
    assert out["toy"] and out["builtin"] == "OpenAICompletion"
    # the same class twice under one name is harmless; another class under it is an error
    assert out["ok"] == ["toy-word-count", "toy-word-count"]
    assert out["duplicate"] == [
        "protocol 'openai' is registered twice: harness.load.protocols.OpenAICompletion and "
        "tests.support.toy.protocol.WordCount",
        "protocol 'toy-word-count' is registered twice: tests.support.toy.protocol.WordCount "
        "and __main__.Other",
    ]
    assert out["errors"] == [
        "the load config: load.user: no protocol 'nosuch' (known: kserve-v2, openai, "
        "openai-chat, openai-chat-stream, openai-stream)",
        "the load config: load.user: 'tests.support.toy.protocol:Nothing': AttributeError: "
        "module 'tests.support.toy.protocol' has no attribute 'Nothing'",
        "the load config: load.user: 'json:dumps' is no subclass of "
        "harness.load.protocols.Protocol",
    ]
