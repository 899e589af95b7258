"""The reference LLM server as a real process: API shape, streaming, health, metrics."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import LLM_READY_TIMEOUT_S, REPO_ROOT, LLMServer
from tests.support.ports import free_port
from tests.support.procs import Processes


def _complete(server: LLMServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)


def _samples(server: LLMServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_completion_shape_and_usage(llm_server: LLMServer) -> None:
    resp = _complete(llm_server, prompt="Hello there", max_tokens=8)
    assert resp.status_code == 200
    assert resp.headers["x-replica-id"] == llm_server.replica_id
    body = resp.json()
    assert body["id"].startswith("cmpl-")
    assert body["object"] == "text_completion"
    assert body["model"] == "tiny"
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["logprobs"] is None
    assert choice["finish_reason"] == "length"
    assert choice["text"].strip()
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19}


def test_prompt_list_unknown_fields_and_determinism(llm_server: LLMServer) -> None:
    a = _complete(llm_server, prompt=["Once upon"], max_tokens=5, temperature=0.7, top_p=0.9)
    b = _complete(llm_server, model="whatever", prompt="Once upon", max_tokens=5, user="u")
    assert a.status_code == b.status_code == 200
    assert a.json()["choices"][0]["text"] == b.json()["choices"][0]["text"]


def test_streaming_chunks_arrive_as_generated(llm_server: LLMServer) -> None:
    body = {"prompt": "Stream me", "max_tokens": 64, "stream": True}
    chunks: list[str] = []
    t_first = 0.0
    # The client is built first (its TLS setup takes ~50 ms) and the connection warmed up (the
    # server's first request pays ~40 ms of lazy initialisation in the HTTP stack).
    with httpx.Client(timeout=30) as client:
        client.post(f"{llm_server.url}/v1/completions", json={**body, "max_tokens": 1})
        t0 = time.perf_counter()
        with client.stream("POST", f"{llm_server.url}/v1/completions", json=body) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["x-replica-id"] == llm_server.replica_id
            for line in resp.iter_lines():
                if not line:
                    continue
                if not chunks:
                    t_first = time.perf_counter()
                chunks.append(line)
    t_done = time.perf_counter()
    assert chunks[-1] == "data: [DONE]"
    events = [json.loads(c.removeprefix("data: ")) for c in chunks[:-1]]
    assert len(events) == 64
    assert [e["choices"][0]["finish_reason"] for e in events] == [None] * 63 + ["length"]
    assert all(e["object"] == "text_completion" and e["choices"][0]["text"] for e in events)
    assert len({e["id"] for e in events}) == 1
    # The first token left before the rest was generated (no buffering of the stream).
    assert t_first - t0 < 0.5 * (t_done - t0)
    whole = _complete(llm_server, prompt="Stream me", max_tokens=64).json()
    assert "".join(e["choices"][0]["text"] for e in events) == whole["choices"][0]["text"]


def test_stream_with_usage(llm_server: LLMServer) -> None:
    body = {
        "prompt": "abc",
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text = httpx.post(f"{llm_server.url}/v1/completions", json=body, timeout=30).text
    lines = [line for line in text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2].removeprefix("data: "))
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        json.dumps({"max_tokens": 4}).encode(),
        json.dumps({"prompt": "x", "max_tokens": 0}).encode(),
        json.dumps({"prompt": "x", "max_tokens": 100_000}).encode(),
        json.dumps({"prompt": "x", "max_tokens": "5"}).encode(),
        json.dumps({"prompt": ["a", "b"]}).encode(),
        json.dumps({"prompt": 42}).encode(),
    ],
)
def test_bad_input_is_400(llm_server: LLMServer, content: bytes) -> None:
    resp = httpx.post(
        f"{llm_server.url}/v1/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.headers["x-replica-id"] == llm_server.replica_id
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health/live", 200), ("/health/ready", 200), ("/metrics", 200), ("/nope", 404)],
)
def test_replica_header_everywhere(llm_server: LLMServer, path: str, status: int) -> None:
    resp = httpx.get(f"{llm_server.url}{path}", timeout=10)
    assert resp.status_code == status
    assert resp.headers["x-replica-id"] == llm_server.replica_id


def test_models_lists_the_model(llm_server: LLMServer) -> None:
    body = httpx.get(f"{llm_server.url}/v1/models", timeout=10).json()
    assert [m["id"] for m in body["data"]] == ["tiny"]
    assert body["data"][0]["max_model_len"] == 256


def test_metrics_count_tokens_and_batching(llm_server: LLMServer) -> None:
    before = _samples(llm_server)
    assert _complete(llm_server, prompt="count me", max_tokens=10).status_code == 200
    after = _samples(llm_server)
    m = {"model_name": "tiny"}
    gen = "vllm:generation_tokens_total"
    assert _value(after, gen, **m) - _value(before, gen, **m) == 10
    prompt = "vllm:prompt_tokens_total"
    assert _value(after, prompt, **m) - _value(before, prompt, **m) == len("count me")
    ok = "vllm:request_success_total"
    labels = {**m, "finished_reason": "length"}
    assert _value(after, ok, **labels) - _value(before, ok, **labels) == 1
    ttft = "vllm:time_to_first_token_seconds_count"
    assert _value(after, ttft, **m) - _value(before, ttft, **m) == 1

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"{llm_server.url}/v1/completions",
                        json={"prompt": f"request {i}", "max_tokens": 48},
                    )
                    for i in range(8)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 8
    final = _samples(llm_server)

    def batched_steps(s: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
        total = _value(s, "gpuchaos_batch_size_count")
        return total - _value(s, "gpuchaos_batch_size_bucket", le="1.0")

    assert batched_steps(final) > batched_steps(after)
    assert _value(final, gen, **m) - _value(after, gen, **m) == 8 * 48
    assert _value(final, "vllm:num_requests_running", **m) == 0
    assert _value(final, "vllm:num_requests_waiting", **m) == 0
    info = {"replica_id": llm_server.replica_id, "device": "cpu", "model": "tiny"}
    assert _value(final, "gpuchaos_replica_info", **info) == 1
    for stage in ("import", "device_init", "weights", "warmup"):
        assert _value(final, "gpuchaos_startup_seconds", stage=stage) >= 0
    assert _value(final, "gpuchaos_oom_total") == 0


def test_live_before_ready_and_clean_sigterm(tmp_path: Path, processes: Processes) -> None:
    port = free_port()
    log_path = tmp_path / "llm.log"
    cmd = [sys.executable, "-m", "workloads.llm", "--port", str(port), "--replica-id", "early"]
    proc = processes.start(cmd, cwd=REPO_ROOT, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    seen_loading = False
    deadline = time.monotonic() + LLM_READY_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = client.get(f"{url}/health/ready")
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            if ready.status_code == 200:
                break
            assert ready.status_code == 503
            assert ready.headers["x-replica-id"] == "early"
            assert client.get(f"{url}/health/live").status_code == 200
            loading = client.post(f"{url}/v1/completions", json={"prompt": "x"})
            if loading.status_code == 200:
                # the model became ready between the two calls (a busy machine): then the
                # server must say so; a completion served while not ready would be the bug
                assert client.get(f"{url}/health/ready").status_code == 200
                break
            assert loading.status_code == 503
            seen_loading = True
            time.sleep(0.02)
    assert proc.poll() is None, log_path.read_text()
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal (the usual exit status).
    assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
    assert seen_loading, "the port was not bound before the model was ready"
    log = log_path.read_text()
    assert "startup import" in log and "warm-up" in log
    assert "Traceback" not in log
