"""`gpuchaos score` on odd run folders: it never crashes. A folder of a run that did not
finish scores as `incomplete` (exit 2) with every figure of what was recorded; a damaged file
scores without its bad rows or lines, each kind named in the scorecard's `warnings`; a folder
that cannot be scored at all is one `gpuchaos: error:` line and exit 2, never a traceback.

The folders are written with the harness's own writers (RecordWriter, Timeline, the resolved
experiment as the runner dumps it), then damaged per case."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError, ScoringError
from harness.experiment import load_experiment
from harness.records import RecordWriter
from harness.rundir import RunDir
from harness.scoring.rundir import score_run_dir
from harness.timeline import Timeline

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
RATE = 25  # requests per second: above the experiment's throughput objective (20)
SECONDS = 40
ROWS = RATE * SECONDS


def make_run(path: Path, *, finished: bool = True, abort: str | None = None) -> Path:
    """A run folder as the runner leaves it: 40 s of load at 25 req/s, all served in 50 ms;
    a fault on node-a from 10 s to 15 s that the service shrugs off; telemetry each second.
    Without ``finished`` the timeline stops where a SIGKILL would have stopped it (no
    ``run_end``); ``abort`` adds the runner's abort event with that reason."""
    path.mkdir(parents=True)
    paths = RunDir(path)
    exp = load_experiment(ROOT / "experiments" / "gpu-node-loss.yaml", {})
    paths.experiment.write_text(yaml.safe_dump(exp.document, sort_keys=False), encoding="utf-8")
    timeline = Timeline(paths.timeline)
    timeline.emit("run_start", "gpu-node-loss", {"harness_version": "test"}, at=T0 - 5)
    timeline.emit("load_start", "locust", {"duration_s": SECONDS, "pid": 1}, at=T0)
    timeline.emit("phase", "load", {"phase": "baseline"}, at=T0)
    timeline.emit("fault_start", "node-a", {"fault": "lose_node"}, at=T0 + 10)
    timeline.emit("fault_end", "node-a", {}, at=T0 + 15)
    if abort:
        timeline.emit("abort", "gpu-node-loss", {"reason": abort}, at=T0 + 20)
    if finished:
        timeline.emit("load_end", "locust", {}, at=T0 + SECONDS + 0.2)
        timeline.emit("run_end", "gpu-node-loss", at=T0 + SECONDS + 1)
    timeline.close()
    writer = RecordWriter(paths.requests)
    for i in range(ROWS):
        start = T0 + i / RATE
        writer.write(
            {
                "start": f"{start:.3f}",
                "end": f"{start + 0.05:.3f}",
                "latency_ms": 50.0,
                "ttft_ms": 20.0,
                "output_tokens": 16,
                "status": 200,
                "error": "",
                "replica": f"node-{'ab'[i % 2]}-0",
                "phase": "baseline",
            }
        )
    writer.close()
    with open(paths.telemetry, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["time", "source", "metric", "value"])
        for s in range(SECONDS + 1):
            out.writerow([f"{T0 + s:.3f}", "system", "cpu_pct", "50"])
            out.writerow([f"{T0 + s:.3f}", "platform", "replicas_ready", "2"])
    return path


def append(path: Path, data: str | bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def score_both(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], int]:
    """The scorecard (scored in-process) and the exit code of ``gpuchaos score``, which must
    agree with it and print the table (no traceback)."""
    card = score_run_dir(run_dir, write=False)
    code = main(["score", str(run_dir)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == card["exit_code"]
    assert f"{card['verdict'].upper()}" in out
    assert json.loads((run_dir / "scorecard.json").read_text()) == card
    return card, code


def refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], *, error: type[HarnessError] = ScoringError
) -> str:
    """``gpuchaos score`` refuses the folder: exit 2, one line on stderr, no traceback."""
    with pytest.raises(error):
        score_run_dir(run_dir, write=False)
    capsys.readouterr()
    assert main(["score", str(run_dir)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith("gpuchaos: error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def test_a_finished_run_passes_without_warnings(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0), card["slos"]
    assert card["warnings"] == [] and card["run"]["requests"] == ROWS


def test_a_killed_run_is_incomplete_with_what_was_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "killed", finished=False)
    append(run / "requests.csv", f"{T0 + 40:.3f},{T0 + 40.05:.3f},50.0,2")  # cut mid-row
    append(run / "timeline.jsonl", '{"time": 1700000040.1, "kind": "lo')  # cut mid-event
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("incomplete", 2)
    assert "no run_end" in card["incomplete_reason"]
    # nothing recorded is lost: every complete row is scored, the figures are all there
    assert card["run"]["requests"] == ROWS and card["run"]["error_rate"] == 0.0
    assert all(e["passed"] for e in card["slos"])
    assert card["recovery"]["fault"] is True
    warnings = " | ".join(card["warnings"])
    assert "requests.csv: skipped a torn last line" in warnings
    assert "timeline.jsonl: skipped a torn last line" in warnings
    main(["score", str(run)])
    table = capsys.readouterr().out
    assert "INCOMPLETE: the run did not finish" in table and "(exit 2)" in table


def test_an_aborted_run_stays_aborted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for finished in (True, False):  # the runner finished, or was killed after the abort
        run = make_run(tmp_path / f"aborted-{finished}", finished=finished, abort="Ctrl-C")
        card, code = score_both(run, capsys)
        assert (card["verdict"], code, card["abort_reason"]) == ("aborted", 2, "Ctrl-C")


def test_a_missing_timeline_is_incomplete(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "timeline.jsonl").unlink()
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("incomplete", 2)
    assert "no timeline.jsonl" in card["incomplete_reason"]
    assert card["run"]["requests"] == ROWS and card["recovery"]["fault"] is False


def test_a_timeline_without_events_is_incomplete(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "timeline.jsonl").write_text("not json\n[1, 2]\n", encoding="utf-8")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("incomplete", 2)
    assert "holds no event" in card["incomplete_reason"]


def test_a_torn_last_request_row_is_left_out(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torn = f'{T0 + 39:.3f},{T0 + 39.1:.3f},100.0,,0,0,"connection re'
    append(run / "requests.csv", torn)
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)
    assert card["run"]["requests"] == ROWS
    assert card["warnings"] == [f"requests.csv: skipped a torn last line ({len(torn)} bytes)"]


def test_an_empty_request_log_fails_with_a_warning(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "requests.csv").write_bytes(b"")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("fail", 1)  # the run finished and served nothing
    assert card["run"]["requests"] == 0
    assert card["warnings"] == ["requests.csv: no complete lines: no requests to score"]
    assert all(e.get("note") == "no requests recorded" for e in card["slos"])


def test_a_header_only_or_missing_request_log_scores_no_requests(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (run / "requests.csv").read_text(encoding="utf-8")
    (run / "requests.csv").write_text(text.splitlines()[0] + "\r\n", encoding="utf-8")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code, card["run"]["requests"]) == ("fail", 1, 0)
    (run / "requests.csv").unlink()
    card, code = score_both(run, capsys)
    assert (card["verdict"], code, card["run"]["requests"]) == ("fail", 1, 0)
    assert card["warnings"] == ["requests.csv: missing: no requests to score"]


@pytest.mark.parametrize("content", [None, "", "time,source,metric,value\n", "a,b\n1,2\n"])
def test_missing_empty_or_foreign_telemetry_is_a_warning(
    run: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    if content is None:
        (run / "telemetry.csv").unlink()
    else:
        (run / "telemetry.csv").write_text(content, encoding="utf-8")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)
    assert len(card["warnings"]) == 1 and card["warnings"][0].startswith("telemetry.csv: ")
    assert card["gpu"]["gpus"] == 0


def test_garbage_timeline_lines_are_skipped(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (run / "timeline.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    garbage = [
        "not json at all\n",
        "[1, 2, 3]\n",
        "42\n",
        '{"kind": "fault_start"}\n',  # no time
        '{"time": "soon", "kind": "fault_start", "target": "node-b"}\n',
        '{"time": NaN, "kind": "fault_start", "target": "node-b"}\n',
        '{"time": Infinity, "kind": "load_end"}\n',
        '{"time": 1700000001, "kind": 7}\n',
        "[" * 100_000 + "]" * 100_000 + "\n",  # deeper than json's recursion limit
        "\x00\xff binary \n",
    ]
    odd_but_usable = '{"time": 1700000002, "kind": "phase", "target": 5, "details": [1]}\n'
    (run / "timeline.jsonl").write_text(
        "".join(lines[:3] + garbage + [odd_but_usable] + lines[3:]), encoding="utf-8"
    )
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)
    assert card["warnings"] == [
        f"timeline.jsonl: skipped {len(garbage)} line(s) that are not timeline events"
    ]
    assert card["recovery"]["fault_target"] == "node-a" and card["recovery"]["faults"] == 1


def test_nan_inf_and_absurd_values_are_dropped(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = f"{T0 + 1:.3f},{T0 + 1.05:.3f},50.0,20.0,16,200,,node-a-0,baseline,,\r\n"
    bad_rows = [
        f"nan,{T0 + 1:.3f},50.0,20.0,16,200,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},inf,50.0,20.0,16,200,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},{T0 + 1.05:.3f},-inf,20.0,16,200,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},{T0 + 1.05:.3f},50.0,1e400,16,200,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},{T0 + 1.05:.3f},50.0,20.0,1e30,200,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},{T0 + 1.05:.3f},50.0,20.0,16,9e99,,node-a-0,baseline,,\r\n",
        f"{T0 + 1:.3f},1e300,50.0,20.0,16,200,,node-a-0,baseline,,\r\n",
        f"1.0,{T0 + 1.05:.3f},50.0,20.0,16,200,,node-a-0,baseline,,\r\n",  # 1970
    ]
    append(run / "requests.csv", good + "".join(bad_rows))
    append(run / "telemetry.csv", f"nan,gpu0,utilization_pct,50\n{T0},gpu0,utilization_pct,inf\n")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)
    assert card["run"]["requests"] == ROWS + 1
    assert card["gpu"]["gpus"] == 0  # neither telemetry sample counts
    assert card["warnings"] == [
        "requests.csv: left out 1 row(s) with a cell that is not a number",  # nan
        "requests.csv: dropped 6 row(s) with an infinite or huge value",
        "requests.csv: dropped 1 row(s) with a time more than 7 days from the run's",
    ]


def test_a_load_start_with_an_infinite_duration_scores(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (run / "timeline.jsonl").read_text(encoding="utf-8")
    (run / "timeline.jsonl").write_text(
        text.replace(f'"duration_s": {SECONDS}', '"duration_s": Infinity'), encoding="utf-8"
    )
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)  # the shape's end falls back to load_end


def test_damaged_rows_in_the_middle_are_left_out(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (run / "requests.csv").read_bytes().split(b"\r\n")
    damaged = [
        b"abc,def,50.0,20.0,16,200,,node-a-0,baseline,,",  # text in a number column
        b"%.3f,%.3f,50.0,20.0,16,200,,node-a-0,baseline,,,extra,fields" % (T0 + 2, T0 + 2.05),
        b"%.3f,%.3f,50.0,20.0,16,200,\xff\xfe not utf-8,node-a-0,baseline,," % (T0 + 3, T0 + 3.1),
    ]
    (run / "requests.csv").write_bytes(b"\r\n".join(lines[:100] + damaged + lines[100:]))
    card, code = score_both(run, capsys)
    assert card["run"]["requests"] == ROWS + 1  # the non-UTF-8 error text is a failed request
    assert card["run"]["errors"] == 1
    assert card["warnings"] == [
        "requests.csv: left out 1 row(s) with extra fields",
        "requests.csv: left out 1 row(s) with a cell that is not a number",
    ]
    assert code == card["exit_code"] == 0


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"run": 5, "steady_states": []}'])
def test_an_odd_journal_is_a_warning(
    run: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    (run / "journal.json").write_text(content, encoding="utf-8")
    card, code = score_both(run, capsys)
    assert (card["verdict"], code) == ("pass", 0)
    assert card["chaos"] == {"ran": False}
    assert len(card["warnings"]) == 1 and card["warnings"][0].startswith("journal.json: ")


def test_a_missing_folder_a_file_and_a_stranger_folder_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no such folder" in refused(tmp_path / "nowhere", capsys)
    (tmp_path / "file").write_text("x")
    assert "not a folder" in refused(tmp_path / "file", capsys)
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"\xff\xd8\xff")
    assert "not a run folder (no experiment.yaml)" in refused(stranger, capsys)


@pytest.mark.parametrize(
    "content",
    [b"a: [unclosed\n", b"\xff\xfe\x00binary", b"- a list\n- not a mapping\n", b"title: x\n"],
)
def test_an_unreadable_experiment_is_one_line(
    run: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    (run / "experiment.yaml").write_bytes(content)
    assert "experiment.yaml: " in refused(run, capsys, error=HarnessError)


def test_a_request_log_of_something_else_is_refused(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "requests.csv").write_text("name,age\nann,3\n", encoding="utf-8")
    assert "lacks column(s): start, end" in refused(run, capsys)


def test_no_cut_or_flipped_byte_crashes_the_scorer(tmp_path: Path) -> None:
    """Seeded damage to every file of a small killed run: each is scored or refused with a
    HarnessError, never a crash, and the exit code is one of 0, 1, 2."""
    rng = random.Random(12)
    base = make_run(tmp_path / "base", finished=False)
    names = ["requests.csv", "timeline.jsonl", "telemetry.csv", "experiment.yaml"]
    originals = {n: (base / n).read_bytes() for n in names}
    for i in range(48):
        name = names[i % len(names)]
        data = bytearray(originals[name])
        if i % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.choice(b',"\n\r\x00\xff{}[]:9.-e')
        (base / name).write_bytes(bytes(data))
        try:
            card = score_run_dir(base, write=False)
        except HarnessError:
            card = None
        assert card is None or card["exit_code"] in (0, 1, 2)
        if card is not None and name != "timeline.jsonl":  # its run_start may be hit
            assert card["verdict"] == "incomplete", (name, card["warnings"])
        (base / name).write_bytes(originals[name])
