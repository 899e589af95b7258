"""A team's own Prometheus rule file, evaluated over the run by Prometheus' rule engine.

Why ``promtool test rules`` (Debian's ``prometheus`` package, 2.42 and later): it runs the
real rule manager (PromQL, ``for:``, ``keep_firing_for:``, label templating) over series
given as sample lists, without a server, a clock or a database. The run's per-second SLIs
become the ``input_series`` (:mod:`harness.alerts.openmetrics`; time 0 is the run's
``t0``), and every alert name gets an ``alert_rule_test`` expecting *no* alert at every
second: promtool then reports exactly the (alert, second) pairs where one was firing, which
is what is read back. Pending alerts (inside ``for:``) are not firing.

The file may be a plain rule file (``groups:``) or a ``PrometheusRule`` manifest (its
``spec.groups`` are used). It is checked with ``promtool check rules`` first, so a broken
rule is one line naming the file and what promtool said (:class:`ConfigError`, exit 2).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.alerts.burnrate import episodes, outcome
from harness.alerts.openmetrics import promtool_test_doc
from harness.alerts.sli import RunSLIs
from harness.errors import ConfigError, HarnessError

INSTALL_HINT = "apt-get install prometheus (Debian/Ubuntu; it brings promtool)"
#: Seconds promtool may take (a run of hours is thousands of evaluations per alert).
TIMEOUT_S = 600.0
_FAILURE = re.compile(r"^\s*alertname: (?P<name>.+?), time: (?P<time>[0-9a-z.]+),\s*$")
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800, "y": 31_536_000}


class PromtoolMissing(HarnessError):
    """promtool is not installed: the rule file cannot be evaluated."""


def promtool_path() -> str:
    """The ``promtool`` on PATH, else :class:`PromtoolMissing` with the install command."""
    found = shutil.which("promtool")
    if found is None:
        raise PromtoolMissing(f"promtool not found on PATH: {INSTALL_HINT}")
    return found


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1m13s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def _groups_of(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rule groups of a rule file or manifest, and whether it is a manifest."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        raise ConfigError(str(path), "", f"not valid YAML ({first})") from None
    manifest = isinstance(doc, dict) and doc.get("kind") == "PrometheusRule"
    if manifest:
        assert isinstance(doc, dict)
        spec = doc.get("spec")
        doc = spec if isinstance(spec, dict) else {}
        where = "spec.groups"
    else:
        where = "groups"
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        raise ConfigError(
            str(path),
            where,
            "expected a list of rule groups (a Prometheus rule file or a PrometheusRule manifest)",
        )
    return groups, manifest


def alert_severities(groups: list[dict[str, Any]]) -> dict[str, str | None]:
    """The alert names of rule ``groups``, in order, each once, with the ``severity`` label
    of the first rule of that name (None without one)."""
    names: dict[str, str | None] = {}
    for group in groups:
        for rule in (group.get("rules") or []) if isinstance(group, dict) else []:
            if isinstance(rule, dict) and isinstance(rule.get("alert"), str):
                labels = rule.get("labels")
                severity = labels.get("severity") if isinstance(labels, dict) else None
                names.setdefault(rule["alert"], None if severity is None else str(severity))
    return names


def alert_names(groups: list[dict[str, Any]]) -> list[str]:
    """The alert names of rule ``groups``, in order, each once."""
    return list(alert_severities(groups))


def _said(text: str, *paths: Path) -> str:
    """What promtool said, on one line, without its own headings and the file names."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if ln not in ("FAILED:", "Unit Testing:") and "Checking" not in ln]
    said = "; ".join(lines[:3]) or "no output"
    for path in paths:
        said = said.replace(f"{path}: ", "")
    return said[:500]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{args[0]} {args[1]} {args[2]}: no answer in {TIMEOUT_S:g} s") from None


def check_rules(promtool: str, path: Path, scratch: Path, shown: Path | None = None) -> None:
    """``promtool check rules`` on ``path``: a broken file is a :class:`ConfigError` naming
    ``shown`` (the user's file when ``path`` was extracted from it)."""
    proc = _run([promtool, "check", "rules", str(path)], scratch)
    if proc.returncode != 0:
        said = _said(proc.stderr + proc.stdout, path)
        raise ConfigError(str(shown or path), "", f"promtool check rules: {said}")


def firing_times(stdout: str, names: list[str]) -> dict[str, set[float]]:
    """The seconds at which promtool reported each alert firing (see module)."""
    out: dict[str, set[float]] = {name: set() for name in names}
    for line in stdout.splitlines():
        m = _FAILURE.match(line)
        if m and m["name"] in out:
            out[m["name"]].add(parse_duration(m["time"]))
    return out


def evaluate_rule_file(rules: Path, slis: RunSLIs) -> list[dict[str, Any]]:
    """Every alert of the rule file ``rules`` over the run: ``name``, ``severity`` (its
    label) and the figures of :func:`harness.alerts.burnrate.outcome` (seconds from
    ``t0``; time to alert from the first fault's start)."""
    rules = Path(rules)
    promtool = promtool_path()
    groups, manifest = _groups_of(rules)
    severities = alert_severities(groups)
    names = list(severities)
    with tempfile.TemporaryDirectory(prefix="gpuchaos-alerts-") as tmp:
        scratch = Path(tmp)
        rule_file = scratch / "rules.yaml"
        rule_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), "utf-8")
        check_rules(promtool, rule_file if manifest else rules, scratch, rules)
        if not names:
            return []
        test = scratch / "test.yaml"
        doc = promtool_test_doc(str(rule_file), slis, names)
        test.write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 30), "utf-8")
        proc = _run([promtool, "test", "rules", str(test)], scratch)
    fired = firing_times(proc.stdout + proc.stderr, names)
    if proc.returncode != 0 and not any(fired.values()):
        said = _said(proc.stderr + proc.stdout, rule_file, test)
        raise ConfigError(str(rules), "", f"promtool test rules: {said}")
    evaluations = slis.seconds + 1
    rows = []
    for name in names:
        fires = np.zeros(evaluations, dtype=bool)
        for t in fired[name]:
            if float(t).is_integer() and 0 <= t < evaluations:
                fires[int(t)] = True
        found = outcome(episodes(fires), slis.fault_start_s, evaluations)
        rows.append({"name": name, "severity": severities[name], **found})
    return rows
