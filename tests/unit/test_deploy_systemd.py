"""deploy/systemd/: the service runs a game day of a plan that exists, stops it with SIGINT
(a clean abort), counts exit 1 as a result; the timer is weekly and names the service; the
documented cron line runs the same command."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def test_service_runs_a_game_day() -> None:
    service = _unit("gpuchaos-gameday.service")
    s = service["Service"]
    assert s["Type"] == "oneshot" and s["KillSignal"] == "SIGINT"
    assert s["SuccessExitStatus"] == "1"
    argv = shlex.split(s["ExecStart"])
    assert argv[0].endswith("/.venv/bin/gpuchaos") and argv[1] == "gameday"
    assert (ROOT / argv[2]).is_file(), argv[2]  # the plan the README ships
    assert argv[argv.index("--pushgateway") + 1].startswith("http://")


def test_timer_and_cron_line() -> None:
    timer = _unit("gpuchaos-gameday.timer")
    assert timer["Timer"]["Unit"] == "gpuchaos-gameday.service"
    assert timer["Timer"]["OnCalendar"] == "Mon *-*-* 06:00:00"
    assert timer["Install"]["WantedBy"] == "timers.target"
    text = (SYSTEMD / "gpuchaos-gameday.timer").read_text()
    (cron,) = re.findall(r"^#\s+(0 6 \* \* 1 .*)$", text, re.M)
    service = shlex.split(_unit("gpuchaos-gameday.service")["Service"]["ExecStart"])
    assert " ".join(service[1:]) in cron  # the same game day, the same Pushgateway
