"""The classifier as a real process: KServe v2 through tritonclient, dynamic batching,
admission control and SIGTERM drain."""

from __future__ import annotations

import asyncio
import resource
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.conftest import LLMServer, run_llm_server
from tests.integration.test_llm_robustness import _metric, _vm_bytes

CLASSIFIER = "workloads.classifier"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    args = ("--max-batch-size", "8", "--max-batch-delay-ms", "20")
    with run_llm_server(tmp_path_factory.mktemp("cls"), *args, module=CLASSIFIER) as server:
        yield server


def _body(n: int, value: float = 0.5) -> dict[str, object]:
    data = [value] * (n * 3 * 32 * 32)
    return {
        "inputs": [{"name": "input", "shape": [n, 3, 32, 32], "datatype": "FP32", "data": data}]
    }


async def _burst(url: str, n: int, images: int = 1) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(f"{url}/v2/models/classifier/infer", json=_body(images, i / n))
                    for i in range(n)
                )
            )
        )


def test_tritonclient_talks_to_the_classifier(classifier: LLMServer) -> None:
    http = pytest.importorskip("tritonclient.http")
    client = http.InferenceServerClient(classifier.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("classifier")
    meta = client.get_model_metadata("classifier")
    assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    results = []
    for binary in (True, False):
        tensor = http.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = client.infer("classifier", [tensor], request_id="r1")
        results.append(result.as_numpy("logits"))
        assert result.get_response()["id"] == "r1"
    assert results[0].shape == (3, 10)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)
    # a batch gives each image the logits it gets alone
    alone = http.InferInput("input", [1, 3, 32, 32], "FP32")
    alone.set_data_from_numpy(x[1:2])
    np.testing.assert_allclose(
        client.infer("classifier", [alone]).as_numpy("logits")[0], results[0][1], atol=1e-4
    )


def test_protocol_errors_and_headers(classifier: LLMServer) -> None:
    url = classifier.url
    bad = httpx.post(f"{url}/v2/models/classifier/infer", json={"inputs": []}, timeout=10)
    assert bad.status_code == 400 and "error" in bad.json()
    assert bad.headers["x-replica-id"] == classifier.replica_id
    wrong = _body(1)
    wrong["inputs"][0]["shape"] = [1, 3, 31, 32]  # type: ignore[index]
    assert httpx.post(f"{url}/v2/models/classifier/infer", json=wrong).status_code == 400
    assert httpx.get(f"{url}/v2/models/nope", timeout=10).status_code == 404
    assert httpx.get(f"{url}/v2/models/classifier/ready", timeout=10).status_code == 200
    assert httpx.get(f"{url}/v2/health/live", timeout=10).json() == {"live": True}


def test_dynamic_batching_groups_requests(classifier: LLMServer) -> None:
    before = _metric(classifier, "gpuchaos_batch_size_count")
    responses = asyncio.run(_burst(classifier.url, 16))
    assert [r.status_code for r in responses] == [200] * 16
    batches = _metric(classifier, "gpuchaos_batch_size_count") - before
    assert batches < 16  # several requests shared a forward pass
    assert _metric(classifier, "gpuchaos_images_total") >= 16


def test_overload_429_then_serves(tmp_path: Path) -> None:
    args = ("--max-batch-size", "1", "--max-queue-size", "2", "--max-batch-delay-ms", "0")
    with run_llm_server(tmp_path, *args, module=CLASSIFIER) as server:
        codes = [r.status_code for r in asyncio.run(_burst(server.url, 40))]
        assert set(codes) <= {200, 429} and 429 in codes
        ok = httpx.post(f"{server.url}/v2/models/classifier/infer", json=_body(1), timeout=30)
        assert ok.status_code == 200
        assert _metric(server, "gpuchaos_requests_rejected_total", reason="queue_full") >= 1


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    args = ("--max-batch-size", "1", "--max-batch-delay-ms", "0", "--shutdown-grace-s", "20")
    with run_llm_server(tmp_path, *args, module=CLASSIFIER) as server:
        results: list[int] = []

        def send() -> None:
            results.extend(r.status_code for r in asyncio.run(_burst(server.url, 8, images=1)))

        sender = threading.Thread(target=send)
        sender.start()
        # wait until requests are queued, then ask the server to stop
        for _ in range(200):
            if _metric(server, "vllm:num_requests_waiting", model_name="tiny") >= 1:
                break
        server.proc.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert results == [200] * 8


#: Address space left above the classifier's current size while squeezed: room for the socket
#: reads (asyncio's 256 KiB buffer) and small answers, not for a 256-image request.
SQUEEZE_HEADROOMS_MIB = (2, 4)


def test_memory_squeeze_fails_the_large_request_with_503_then_serves(tmp_path: Path) -> None:
    """RLIMIT_AS (the CPU stand-in for a full GPU) lowered to just above what the classifier
    maps: a 256-image request (3 MiB of pixels, 5 MiB of JSON) runs out of memory somewhere
    while it is read, parsed or computed, and wherever that is, it gets a 503 the client can
    read, not a 500 or a reset; the OOM count moves; with the limit restored the same request
    succeeds on the same connection pool."""
    args = ("--max-batch-size", "256", "--max-batch-delay-ms", "0")
    with run_llm_server(tmp_path, *args, module=CLASSIFIER) as server:
        pid = server.proc.pid
        infer = f"{server.url}/v2/models/classifier/infer"
        small, large = _body(1), _body(256)
        with httpx.Client(timeout=60) as client:
            assert client.post(infer, json=small).status_code == 200
            for headroom_mib in SQUEEZE_HEADROOMS_MIB:
                ooms = _metric(server, "gpuchaos_oom_total")
                soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
                resource.prlimit(
                    pid, resource.RLIMIT_AS, (_vm_bytes(pid) + headroom_mib * 2**20, hard)
                )
                try:
                    squeezed = client.post(infer, json=large)
                finally:
                    resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))
                assert squeezed.status_code == 503, (headroom_mib, squeezed.text)
                assert "out of memory" in squeezed.json()["error"]
                assert squeezed.headers["x-replica-id"] == server.replica_id
                assert _metric(server, "gpuchaos_oom_total") == ooms + 1
                after = client.post(infer, json=large)
                assert after.status_code == 200, (headroom_mib, after.text)
                assert after.json()["outputs"][0]["shape"] == [256, 10]
            assert client.get(f"{server.url}/v2/health/ready").status_code == 200
        assert server.proc.poll() is None
        assert "Exception in ASGI application" not in server.log()
        assert "Fatal error" not in server.log()
