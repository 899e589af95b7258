"""``gpuchaos drill act RUN_DIR ACTION [ARGS]``: a trainee's action from a terminal, sent to
the running drill's page exactly as the page's buttons send it (POST with the token).

The address and token are in the drill folder's ``drill-connection.json``, readable by the
drill's user only (mode 0600): whoever can read it may act, as whoever has the printed URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness.drill.actions import ACTIONS
from harness.errors import ConfigError, HarnessError

#: Seconds to wait for the drill's answer (a drain waits for nothing, but the machine may be busy).
ACT_TIMEOUT_S = 30.0


def parse_act(words: list[str]) -> tuple[Path, str, dict[str, Any]]:
    """RUN_DIR ACTION [ARGS] as (folder, action, JSON body); positional arguments in the
    order :data:`ACTIONS` lists them."""
    if len(words) < 2:
        raise ConfigError(
            "drill act", " ".join(words) or "(nothing)", "expected RUN_DIR ACTION [ARGS]"
        )
    folder, action, rest = Path(words[0]), words[1], words[2:]
    if action not in ACTIONS:
        raise ConfigError("drill act", action, f"expected one of {', '.join(ACTIONS)}")
    names = ACTIONS[action]
    if len(rest) != len(names):
        usage = " ".join(n.upper() for n in names) or "no arguments"
        raise ConfigError("drill act", action, f"expected {usage}")
    return folder, action, dict(zip(names, rest, strict=True))


def connection(folder: Path) -> dict[str, str]:
    from harness.drill.run import CONNECTION_FILE

    path = folder / CONNECTION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"base": str(data["base"]), "token": str(data["token"])}
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(str(path), "", "no running drill's connection file here") from None


def send(base: str, token: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the action; the drill's answer, or a HarnessError with its reason."""
    req = urllib.request.Request(
        f"{base}/api/act/{action}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Gpuchaos-Token": token},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=ACT_TIMEOUT_S) as resp:
            return dict(json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            why = json.loads(exc.read() or b"{}").get("error") or exc.reason
        except ValueError:
            why = exc.reason
        raise HarnessError(f"{action} refused ({exc.code}): {why}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise HarnessError(
            f"the drill at {base} does not answer ({exc}); is it still running?"
        ) from None


def cmd_act(words: list[str]) -> int:
    folder, action, body = parse_act(words)
    conn = connection(folder)
    answer = send(conn["base"], conn["token"], action, body)
    print(answer.get("message") or json.dumps(answer))
    return 0
