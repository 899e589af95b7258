"""The pieces of the recording user's per-request path: prompts, phases and rows.

They were made cheap for ``make bench-load``; these tests pin that they still give what
the slower, obvious code gave.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import DiurnalShape, RampShape, Shape, SpikeShape, StepShape
from harness.load.sampling import PromptSource
from harness.load.shapes import PhaseClock, duration, phase_at
from harness.load.sse import classify_line, quick_kind
from harness.records import COLUMNS, OPTIONAL_COLUMNS, RecordWriter, csv_field

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def test_prompts_have_the_asked_length_and_are_seeded() -> None:
    a = PromptSource(WORDS, seed=7, longest=32, size=256)
    b = PromptSource(WORDS, seed=7, longest=32, size=256)
    c = PromptSource(WORDS, seed=8, longest=32, size=256)
    lengths = [random.Random(1).randint(0, 32) for _ in range(50)]
    first = [a.prompt(n) for n in lengths]
    assert first == [b.prompt(n) for n in lengths]
    assert first != [c.prompt(n) for n in lengths]
    for n, prompt in zip(lengths, first, strict=True):
        words = prompt.split(" ") if prompt else []
        assert len(words) == n and set(words) <= set(WORDS)


@pytest.mark.parametrize("longest", [16, 81])  # 120 windows: the plain stride shares a factor
def test_no_prompt_comes_back_within_a_period(longest: int) -> None:
    """Every window of the text is used once before any is used again (prefix caches)."""
    source = PromptSource(WORDS, seed=3, longest=longest, size=200)
    period = 200 - longest + 1
    prompts = [source.prompt(longest) for _ in range(period)]
    assert len(set(prompts)) == period
    assert source.prompt(longest) == prompts[0]  # and then the cycle starts again


def test_workers_never_send_each_others_prompts() -> None:
    size, longest, workers = 300, 10, 3
    per_worker = (size - longest + 1) // workers
    seen: list[str] = []
    for worker in range(workers):
        source = PromptSource(WORDS, 5, longest, worker=worker, workers=workers, size=size)
        seen += [source.prompt(longest) for _ in range(per_worker)]
    assert len(set(seen)) == len(seen)


SHAPES: list[Shape] = [
    SpikeShape(
        kind="spike",
        duration_s=30,
        baseline_users=2,
        spike_multiplier=4,
        spike_start_s=10,
        spike_duration_s=7.5,
    ),
    SpikeShape(
        kind="spike",
        duration_s=30,
        baseline_users=2,
        spike_multiplier=4,
        spike_start_s=0,
        spike_duration_s=0,
    ),
    StepShape(kind="step", duration_s=10, start=2, increment=3, step_s=4),
    RampShape(kind="ramp", duration_s=20, start=0, end=10, ramp_s=10),
    DiurnalShape(kind="diurnal", duration_s=95, mean=5, amplitude=5, period_s=40),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.kind)
def test_phase_clock_agrees_with_phase_at(shape: Shape) -> None:
    end = duration(shape)
    rng = random.Random(11)
    times = sorted(rng.uniform(-2, end + 5) for _ in range(3000))
    times += [float(t) for t in range(-1, int(end) + 3)]  # whole seconds hit the boundaries
    times += [rng.uniform(-2, end + 5) for _ in range(500)]  # and going back in time
    clock = PhaseClock(shape)
    for t in times:
        assert clock.at(t) == phase_at(shape, t), t


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@given(st.lists(TEXT, min_size=3, max_size=3))
def test_csv_field_quotes_like_the_csv_module(fields: list[str]) -> None:
    line = ",".join(["1.5", *(csv_field(f) for f in fields)]) + "\r\n"
    assert next(csv.reader(io.StringIO(line, newline=""))) == ["1.5", *fields]


def test_record_writer_header_once_rows_whole(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    first = RecordWriter(path)
    first.write({"start": 1.0, "end": 2.0, "latency_ms": 1000.0, "status": 200, "phase": "a"})
    second = RecordWriter(path)  # a second writer (a worker) appends, no second header
    second.write_line('3.0,4.0,1000.000,,5,503,"HTTP 503: busy, retry",r1,b,\r\n')
    first.write_row([5.0, 6.0, 1000.0, 12.5, 16, 200, "", "r2", "c", 0.5])
    first.close()
    second.close()
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0]) == list(COLUMNS + OPTIONAL_COLUMNS)
    assert [r["phase"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["error"] == "HTTP 503: busy, retry" and rows[2]["ttft_ms"] == "12.5"


CHUNK_TEXT = st.one_of(st.none(), st.text(max_size=12))


@st.composite
def sse_lines(draw: st.DrawFn) -> bytes:
    text = draw(CHUNK_TEXT)
    if draw(st.booleans()):
        choice: dict[str, object] = {"text": text, "index": 0, "finish_reason": None}
    else:
        choice = {"delta": {"content": text}, "index": 0}
    doc: dict[str, object] = {"id": "cmpl-1", "object": "chunk", "choices": [choice]}
    if draw(st.booleans()):
        doc["usage"] = None
    if draw(st.integers(0, 5)) == 0:
        doc["error"] = {"message": draw(st.text(max_size=10))}
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    body = json.dumps(doc, separators=separators, ensure_ascii=draw(st.booleans()))
    prefix = draw(st.sampled_from(["data: ", "data:"]))
    return (prefix + body + draw(st.sampled_from(["\n", "\r\n", ""]))).encode()


@given(sse_lines())
def test_quick_kind_never_contradicts_classify_line(line: bytes) -> None:
    quick, (kind, text) = quick_kind(line), classify_line(line)
    assert quick is None or quick == kind
    if kind == "token" and b'"error"' not in line:
        assert quick == "token"  # the common case takes the fast path
    assert text or kind != "token"


@pytest.mark.parametrize(
    "line",
    [b"data: [DONE]\n", b": keep-alive\n", b"event: ping\n", b"data: {not json\n", b"data: 3\n"],
)
def test_quick_kind_on_other_lines(line: bytes) -> None:
    assert quick_kind(line) in (None, classify_line(line)[0])
