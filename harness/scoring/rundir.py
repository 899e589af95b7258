"""Score a run folder offline: ``gpuchaos score RUN_DIR`` reproduces ``scorecard.json``.

Everything is read from the folder: the resolved experiment (for the SLOs), the request
records (and their ``lag_ms`` when the folder has it), the timeline, the telemetry and Chaos
Toolkit's journal. A request log longer than one block (a soak of hours) is read in blocks
and scored from disk in bounded memory, with the same figures
(:mod:`harness.scoring.chunked`). A damaged folder still scores: what cannot be read is
stepped over and named in the scorecard's ``warnings``, and a run that did not finish (a
harness that was killed) scores as ``incomplete`` (exit 2), with the figures of what was
recorded (see :mod:`harness.scoring.intake`). Only a folder that is not a run folder, or
whose experiment or request log cannot be read at all, raises :class:`ScoringError` or
:class:`ConfigError`: one line, exit 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from harness import __version__
from harness.alerts.scorecard import scorecard_alerts
from harness.config import EXTENSION_NAME, HarnessSpec
from harness.errors import ConfigError, HarnessError, ScoringError
from harness.records import COLUMNS
from harness.rundir import EXPERIMENT_FILE, REQUESTS_FILE, TELEMETRY_FILE, RunDir
from harness.scoring.chunked import ChunkedRequests
from harness.scoring.gpu import read_telemetry
from harness.scoring.instrument import read_lag
from harness.scoring.intake import drop_far_off, read_events, read_journal, unfinished
from harness.scoring.lenient import warn
from harness.scoring.parts import chunk_bytes
from harness.scoring.persecond import per_second, write_per_second
from harness.scoring.resilience import litmus_style
from harness.scoring.scorecard import build_scorecard, json_safe
from harness.scoring.slis import read_requests
from harness.scoring.tenancy import score_tenancy

log = logging.getLogger(__name__)


def _experiment_doc(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The path and the parsed document of a run folder's ``experiment.yaml``."""
    if not run_dir.exists():
        raise ScoringError(f"{run_dir}: no such folder")
    if not run_dir.is_dir():
        raise ScoringError(f"{run_dir}: not a folder (expected a run folder)")
    path = RunDir(run_dir).experiment
    if not path.is_file():
        raise ScoringError(f"{run_dir}: not a run folder (no {EXPERIMENT_FILE})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(str(path), "", f"not valid YAML ({first})") from None
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "", "expected a mapping (a Chaos Toolkit experiment)")
    return path, doc


def load_run_spec(run_dir: Path) -> tuple[dict[str, Any], HarnessSpec]:
    """The resolved experiment document of a run and its harness spec."""
    run_dir = Path(run_dir)
    try:
        path, doc = _experiment_doc(run_dir)
    except OSError as exc:
        raise ScoringError(f"{run_dir}: cannot read: {exc.strerror or exc}") from None
    extensions = doc.get("extensions") or []
    for i, ext in enumerate(extensions if isinstance(extensions, list) else []):
        if isinstance(ext, dict) and ext.get("name") == EXTENSION_NAME:
            try:
                return doc, HarnessSpec.model_validate(ext)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise ConfigError(str(path), f"extensions[{i}].{loc}", err["msg"]) from None
    raise ConfigError(str(path), "extensions", f"no {EXTENSION_NAME} block")


def _chaos_summary(journal: dict[str, Any] | None) -> dict[str, Any]:
    if journal is None:
        return {"ran": False}
    ss = journal.get("steady_states") or {}

    def met(key: str) -> bool | None:
        part = ss.get(key)
        return None if not part else bool(part.get("steady_state_met"))

    return {
        "ran": True,
        "status": journal.get("status"),
        "deviated": bool(journal.get("deviated")),
        "steady_state_before": met("before"),
        "steady_state_after": met("after"),
        "activities": [
            {
                "name": (r.get("activity") or {}).get("name"),
                "status": r.get("status"),
                "start": r.get("start"),
                "end": r.get("end"),
            }
            for r in (journal.get("run") or []) + (journal.get("rollbacks") or [])
        ],
    }


def no_requests() -> pd.DataFrame:
    """A request frame without rows (a folder without ``requests.csv``)."""
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})


def _read_logs(
    run_dir: Path, warnings: list[str] | None
) -> tuple[pd.DataFrame, list[dict[str, Any]] | None]:
    """Request records (none without ``requests.csv``) and timeline events (None without
    ``timeline.jsonl``), times far from the run dropped (see :mod:`harness.scoring.intake`)."""
    paths = RunDir(run_dir)
    if paths.requests.is_file():
        requests = read_requests(paths.requests, warnings=warnings)
    else:
        warn(warnings, REQUESTS_FILE, "missing: no requests to score")
        requests = no_requests()
    events = read_events(paths.timeline, warnings)
    requests, kept = drop_far_off(requests, events or [], warnings)
    return requests, None if events is None else kept


def read_run_logs(run_dir: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A run folder's request records (no rows when it has no ``requests.csv``) and
    timeline events (none without ``timeline.jsonl``), read as the scorer reads them."""
    requests, events = _read_logs(Path(run_dir), None)
    return requests, events or []


def _read_telemetry(path: Path, warnings: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        warn(warnings, TELEMETRY_FILE, "missing: no GPU or load-generator figures")
        return None
    try:
        telemetry = read_telemetry(path)
    except ScoringError as exc:
        warn(warnings, path, f"unreadable ({str(exc).split(': ', 1)[-1]}); scored without it")
        return None
    if telemetry.empty:
        warn(warnings, path, "no samples: no GPU or load-generator figures")
    return telemetry


def _add_chaos(card: dict[str, Any], journal: dict[str, Any] | None, warnings: list[str]) -> None:
    """The journal's summary and Litmus-style score; a pass the hypothesis denies is a fail."""
    try:
        litmus, chaos = litmus_style(journal), _chaos_summary(journal)
    except (AttributeError, TypeError) as exc:  # a journal of the wrong shape
        warn(warnings, "journal.json", f"unexpected structure ({exc}); scored without it")
        litmus, chaos = None, _chaos_summary(None)
    card["score"]["litmus_style"] = litmus
    card["chaos"] = chaos = json_safe(chaos)  # a journal may hold anything
    if card.get("verdict") == "pass":
        if chaos.get("steady_state_before") is False:
            card.update(verdict="fail", exit_code=1)
            card["note"] = "the steady-state hypothesis did not hold before the method"
        elif chaos.get("deviated"):
            card.update(verdict="fail", exit_code=1)
            card["note"] = "the steady-state hypothesis deviated after the method"


def _score(run_dir: Path, write: bool) -> dict[str, Any]:
    paths = RunDir(run_dir)
    doc, spec = load_run_spec(run_dir)
    if spec.tenancy is not None:
        return _score_tenancy(paths, doc, spec, write)
    block = chunk_bytes()
    with tempfile.TemporaryDirectory(prefix="gpuchaos-score-") as scratch:
        if paths.requests.is_file() and paths.requests.stat().st_size > block:
            return _score_logs(paths, doc, spec, write, (Path(scratch), block))
        return _score_logs(paths, doc, spec, write, None)


def _score_tenancy(
    paths: RunDir, doc: dict[str, Any], spec: HarnessSpec, write: bool
) -> dict[str, Any]:
    """A tenancy run: each tenant scored on its view of the folder, then combined
    (:mod:`harness.scoring.tenancy`); the steady-state hypothesis judged on the whole run."""
    card = score_tenancy(
        paths.path, doc, spec, write=write, score_folder=lambda view: _score(view, write)
    )
    _add_chaos(card, read_journal(paths.journal, card["warnings"]), card["warnings"])
    if write:
        paths.scorecard.write_text(
            json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    return card


def _score_logs(
    paths: RunDir,
    doc: dict[str, Any],
    spec: HarnessSpec,
    write: bool,
    parts: tuple[Path, int] | None,
) -> dict[str, Any]:
    """Score the logs of a run folder; with ``parts`` (a scratch folder and a block size)
    the request log is read in blocks and scored from disk in bounded memory
    (:mod:`harness.scoring.chunked`), else as one frame."""
    warnings: list[str] = []
    timeout_ms = spec.load.request_timeout_s * 1000.0
    requests: pd.DataFrame | ChunkedRequests
    if parts is None:
        requests, events = _read_logs(paths.path, warnings)
    else:
        requests = ChunkedRequests.read(
            paths.requests,
            parts[0],
            timeout_ms=timeout_ms,
            slos=spec.slos,
            warnings=warnings,
            block_bytes=parts[1],
        )
        events = read_events(paths.timeline, warnings)
        kept = requests.drop_far_off(events or [], warnings)
        events = None if events is None else kept
    timeline = events or []
    journal = read_journal(paths.journal, warnings)
    telemetry = _read_telemetry(paths.telemetry, warnings)
    run_start = next((e for e in timeline if e.get("kind") == "run_start"), None)
    meta = {
        "harness_version": __version__,
        "experiment": {
            "title": doc.get("title"),
            "version": doc.get("version"),
            "name": None if run_start is None else run_start.get("target"),
        },
        "run_dir": paths.path.name,
    }
    card = build_scorecard(
        requests,
        timeline,
        spec.slos,
        timeout_ms=timeout_ms,
        meta=meta,
        telemetry=telemetry,
        lag=read_lag(paths.requests) if isinstance(requests, pd.DataFrame) else requests.lag,
        incomplete=unfinished(events),
        warnings=warnings,
    )
    _add_chaos(card, journal, card["warnings"])
    card["alerts"] = scorecard_alerts(requests, timeline, spec.slos, timeout_ms)
    if write:
        paths.scorecard.write_text(
            json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        t0 = card["run"].get("t0")
        if t0 is not None and len(requests):
            table = (
                per_second(requests, t0, timeout_ms, slos=spec.slos)
                if isinstance(requests, pd.DataFrame)
                else requests.per_second(t0)
            )
            write_per_second(table, paths.slis)
    return card


def score_run_dir(run_dir: str | Path, write: bool = True) -> dict[str, Any]:
    """Build the scorecard of a run folder (and write ``scorecard.json`` and ``slis.csv``).

    Raises :class:`ScoringError` or :class:`ConfigError` (one line each) when the folder
    cannot be scored; anything else that goes wrong is logged with its traceback and raised
    as a :class:`ScoringError` too, so ``gpuchaos score`` always ends with one line."""
    run_dir = Path(run_dir)
    try:
        return _score(run_dir, write)
    except HarnessError:
        raise
    except OSError as exc:
        where = exc.filename or run_dir
        raise ScoringError(f"{where}: {exc.strerror or exc}") from None
    except Exception as exc:
        log.exception("scoring %s failed", run_dir)
        text = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ScoringError(f"{run_dir}: could not be scored: {type(exc).__name__}: {text}") from exc
