"""Any OpenAI-compatible server (issue 21, item 4): the chat users, streamed and not, against a
third-party-style server (tests/support/openai_server.py) behind a gateway's base path; a
bearer token from the environment that never reaches the run folder; extra headers; https
with a CA bundle, with ``verify: false`` (loud), and refused without either; the model
discovered from ``GET /v1/models`` once per process. Real Locust, real ``gpuchaos run``, on
127.0.0.1.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import LoadSpec
from harness.errors import ConfigError
from harness.experiment import load_experiment
from harness.load.factory import make_load_runner
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline
from tests.support.openai_server import (
    MODELS,
    PIECES,
    REPLICA,
    USAGE_TOKENS,
    OpenAIServer,
    self_signed_certificate,
    serving,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN_ENV = "GPUCHAOS_TEST_GATEWAY_TOKEN"
#: Long and unlike anything else, so finding it anywhere is no accident.
TOKEN = "sk-test-7f3a9c1e5b2d4086a1c3e5f7b9d1f3a5"
GATEWAY = "/gw/openai"
SHAPE = {"kind": "step", "duration_s": 4, "start": 2, "increment": 0, "step_s": 4}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _run_load(spec: LoadSpec, url: str, run_dir: Path) -> list[dict[str, str]]:
    runner = make_load_runner(spec, url, run_dir, Timeline(None))
    try:
        runner.start()
        assert runner.wait(timeout=40), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0, (run_dir / "locust.log").read_text()
    rows = _rows(run_dir)
    assert rows, (run_dir / "locust.log").read_text()
    return rows


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    yield TOKEN_ENV


# -- the chat users ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "usage", "model", "tokens"),
    [
        ("openai-chat-stream", False, None, len(PIECES)),  # a token per content chunk
        ("openai-chat-stream", True, None, USAGE_TOKENS),  # the usage block's count wins
        ("openai-chat", True, "other-model", USAGE_TOKENS),  # given: no GET /v1/models
    ],
)
def test_chat_users_read_streams_and_whole_answers(
    user: str, usage: bool, model: str | None, tokens: int, tmp_path: Path, token_env: str
) -> None:
    server = OpenAIServer(base_path=GATEWAY, token=TOKEN, usage=usage)
    spec = LoadSpec.model_validate(
        {
            "user": user,
            "shape": SHAPE,
            "model": model,
            "wait_s": 0.05,
            "api_key_env": token_env,
            "headers": {"X-Tenant": "chaos-team", "accept-encoding": "identity"},
        }
    )
    with serving(server):
        rows = _run_load(spec, server.url, tmp_path)

    streamed = user.endswith("-stream")
    for row in rows:
        assert (row["status"], row["error"], row["replica"]) == ("200", "", REPLICA), row
        assert int(row["output_tokens"]) == tokens, row
        if streamed:  # TTFT at the first content chunk, not the role-only one
            assert 0 < float(row["ttft_ms"]) <= float(row["latency_ms"]), row
        else:
            assert row["ttft_ms"] == "", row
    posts = server.requests("POST")
    assert len(posts) == len(rows)  # every request a record, and no other
    # the model: discovered once per process (the first listed), or the one given
    gets = server.requests("GET")
    assert [g.path for g in gets] == ([] if model else [f"{GATEWAY}/v1/models"])
    for seen in [*posts, *gets]:
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["x-tenant"] == "chaos-team"
    for post in posts:
        assert post.path == f"{GATEWAY}/v1/chat/completions"
        assert post.body is not None
        assert post.body["model"] == (model or MODELS[0])
        assert post.body["stream"] is streamed
        assert post.body["messages"][0]["role"] == "user" and post.body["max_tokens"] == 16
        # a header given in another case replaces the protocol's, it is not sent twice
        assert list(post.headers).count("accept-encoding") == 1


def test_a_wrong_token_is_an_http_error_record(tmp_path: Path, token_env: str) -> None:
    server = OpenAIServer(token="another-token")
    spec = LoadSpec.model_validate(
        {"user": "openai-chat-stream", "shape": SHAPE, "wait_s": 0.1, "api_key_env": token_env}
    )
    with serving(server):
        rows = _run_load(spec, server.url, tmp_path)
    # the model could not be discovered: each request says why, and nothing was posted
    for row in rows:
        assert row["status"] == "0" and row["error"].startswith(
            f"load.model is unset and GET {server.url}/v1/models answered HTTP 401: "
        ), row
    assert not server.requests("POST")
    assert "Traceback" not in (tmp_path / "locust.log").read_text()


# -- the token never reaches the run folder ---------------------------------------------------


def _experiment(url: str) -> dict[str, Any]:
    load = {
        "user": "openai-chat-stream",
        "api_key_env": TOKEN_ENV,
        "headers": {"X-Tenant": "chaos-team"},
        "shape": {"kind": "step", "duration_s": 4, "start": 2, "increment": 0, "step_s": 4},
        "wait_s": 0.05,
    }
    return {
        "version": "1.0.0",
        "title": "A gateway with a bearer token",
        "description": "The chat user through a gateway path; the token from the environment.",
        "extensions": [
            {
                "name": "gpuchaos",
                "endpoint": {"url": url, "ready_path": "/v1/models"},
                "load": load,
                "slos": {"error_rate": 0.01},
                "warmup_s": 1,
            }
        ],
        "controls": [
            {
                "name": "gpuchaos-timeline",
                "provider": {"type": "python", "module": "harness.chaos.controls"},
            }
        ],
        "method": [
            {
                "type": "probe",
                "name": "slo-window",
                "provider": {
                    "type": "python",
                    "module": "harness.chaos.probes",
                    "func": "slo_window",
                    "arguments": {"window_s": 1},
                },
            }
        ],
    }


def test_a_run_through_a_gateway_leaves_no_trace_of_the_token(tmp_path: Path) -> None:
    server = OpenAIServer(base_path=GATEWAY, token=TOKEN)  # every route guarded, ready too
    with serving(server):
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(_experiment(server.url)), encoding="utf-8")
        out = tmp_path / "run"
        env = {**os.environ, TOKEN_ENV: TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "harness", "run", str(path), "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output
    rows = _rows(out)
    assert rows and all(r["status"] == "200" and r["error"] == "" for r in rows), rows[:3]
    assert all(int(r["output_tokens"]) == len(PIECES) for r in rows)
    posts = server.requests("POST")
    assert len(posts) == len(rows)
    assert all(p.headers["authorization"] == f"Bearer {TOKEN}" for p in posts)
    assert all(p.body is not None and p.body["model"] == MODELS[0] for p in posts)
    assert TOKEN not in output
    # every file of the run folder, locust.log and load.json included; none holds the token
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"locust.log", "load.json", "experiment.yaml", "journal.json", "harness.log"} <= names
    holding = [p.name for p in files if TOKEN.encode() in p.read_bytes()]
    assert holding == []
    assert TOKEN_ENV in (out / "load.json").read_text()  # the variable's name, only


# -- https --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("no openssl to make a certificate with")
    return made


@pytest.mark.parametrize("check", ["ca_bundle", "verify-false", "default"])
def test_https_with_a_ca_bundle_or_without_checks(
    check: str,
    certificate: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings: dict[str, Any] = {
        "ca_bundle": {"ca_bundle": str(certificate[0])},
        "verify-false": {"verify": False},
        "default": {},
    }[check]
    spec = LoadSpec.model_validate(
        {"user": "openai-chat-stream", "model": "m", "shape": SHAPE, "wait_s": 0.1, **settings}
    )
    server = OpenAIServer()
    caplog.set_level(logging.WARNING, logger="harness.connection")
    with serving(server, tls=certificate):
        assert server.url.startswith("https://")
        rows = _run_load(spec, server.url, tmp_path)
    locust_log = (tmp_path / "locust.log").read_text()
    warned = "load.verify is false: the TLS certificate of"
    if check == "default":  # certifi's bundle does not know this certificate: refused
        assert not server.requests("POST")
        for row in rows:
            assert row["status"] == "0" and "CERTIFICATE_VERIFY_FAILED" in row["error"], row
    else:
        assert all(r["status"] == "200" and r["error"] == "" for r in rows), rows[:3]
        assert len(server.requests("POST")) == len(rows)
    if check == "verify-false":  # loud: in the harness's log and in locust.log
        assert warned in locust_log
        assert any(
            warned in r.getMessage() and server.url in r.getMessage() for r in caplog.records
        )
    else:
        assert warned not in locust_log and not caplog.records


# -- the settings: their form at validate, the token and the CA file at the load's start ------


def test_a_missing_token_or_ca_file_fails_the_start_in_one_line(tmp_path: Path) -> None:
    os.environ.pop(TOKEN_ENV, None)
    spec = LoadSpec.model_validate({"shape": SHAPE, "api_key_env": TOKEN_ENV})
    runner = make_load_runner(spec, "http://127.0.0.1:9", tmp_path / "a", Timeline(None))
    with pytest.raises(ConfigError) as err:
        runner.start()
    assert str(err.value) == (
        f"the load config: load.api_key_env: environment variable {TOKEN_ENV} is not set (or "
        "empty); it holds the bearer token"
    )
    assert not runner.running and not (tmp_path / "a" / "locust.log").exists()

    not_pem = tmp_path / "not-a-bundle.pem"
    not_pem.write_text("no certificate here\n")
    spec = LoadSpec.model_validate({"shape": SHAPE, "ca_bundle": str(not_pem)})
    runner = make_load_runner(spec, "https://127.0.0.1:9", tmp_path / "b", Timeline(None))
    with pytest.raises(ConfigError, match=r"load\.ca_bundle: cannot load CA certificates from"):
        runner.start()
    assert not runner.running


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"api_key_env": "MY-TOKEN"}, "'MY-TOKEN' is no environment variable name"),
        ({"headers": {"authorization": "Bearer x"}}, "Authorization is refused here"),
        ({"headers": {"X-Tenant": "a\r\nX-Evil: 1"}}, "header 'X-Tenant': a value must be one"),
        ({"headers": {"X Tenant": "a"}}, "'X Tenant' is no HTTP header name"),
        ({"ca_bundle": "ca.pem", "verify": False}, "ca_bundle and verify: false contradict"),
        (
            {"api_key_env": "TOKEN", "workers": 1, "workers_on": "kubernetes"},
            "api_key_env: the harness's environment and files, which the Locust Jobs",
        ),
    ],
)
def test_a_bad_connection_setting_is_one_clear_line(
    setting: dict[str, Any], message: str, tmp_path: Path
) -> None:
    doc = _experiment("http://127.0.0.1:9")
    doc["extensions"][0]["load"] = {"shape": SHAPE, **setting}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    text = str(err.value)
    assert text.startswith(str(path)) and "load" in text and "\n" not in text
    assert message in text


def test_the_settings_validate_without_the_token_or_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    spec = LoadSpec.model_validate(
        {"shape": SHAPE, "api_key_env": TOKEN_ENV, "ca_bundle": "certs/ca.pem"}
    )
    assert spec.api_key_env == TOKEN_ENV and spec.verify
    assert spec.ca_bundle == str(tmp_path / "certs" / "ca.pem")  # from the working directory
    assert spec.headers == {} and spec.model_dump(mode="json")["api_key_env"] == TOKEN_ENV
