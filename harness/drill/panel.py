"""The drill's panels on the live page: the trainee's buttons and forms, and the
facilitator's (inject a fault by hand).

Each form posts to one action (``<form data-act="NAME">``, see
:meth:`harness.live.server.LiveServer.add_panel`); its answer's ``message`` shows beside
it. The trainee's lists name nodes, replicas and diagnosis labels only: never a fault.
"""

from __future__ import annotations

from html import escape

from harness.drill.pack import DIAGNOSES, DIAGNOSIS_IDS

_STYLE = (
    "<style>.drill form{display:inline-block;margin:.2em .6em .2em 0}"
    ".drill output{margin-left:.4em;color:#555}</style>"
)


def _options(values: list[str]) -> str:
    return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def _form(action: str, label: str, fields: str = "") -> str:
    return (
        f'<form data-act="{escape(action)}">{fields}'
        f'<button type="submit">{escape(label)}</button><output data-act-result></output></form>'
    )


def trainee_panel(nodes: list[str], replicas: list[str]) -> str:
    """Acknowledge, diagnose, mitigate and resolve, as forms."""
    kinds = "".join(
        f'<option value="{escape(DIAGNOSIS_IDS[f])}">{escape(label)}</option>'
        for f, label in DIAGNOSES.items()
    )
    kind = f'<select name="kind">{kinds}</select>'
    node = f'<select name="node">{_options(nodes)}</select>'
    replica = f'<select name="replica">{_options(replicas)}</select>'
    target = f'<select name="target">{_options(nodes + replicas)}</select>'
    count = '<input name="replicas" type="number" min="0" max="64" value="2" size="3">'
    return (
        f'{_STYLE}<div class="drill"><h3>On call</h3>'
        f"<p>{_form('ack', 'Acknowledge: something is wrong')}</p>"
        f"<p>Diagnosis: {_form('diagnose', 'Diagnose', kind + ' on ' + target + ' ')}</p>"
        f"<p>Replica: {_form('restart', 'Restart', replica + ' ')}"
        f"{_form('eject', 'Eject from router', replica + ' ')}"
        f"{_form('readmit', 'Readmit to router', replica + ' ')}</p>"
        f"<p>Node: {_form('cordon', 'Cordon', node + ' ')}"
        f"{_form('uncordon', 'Uncordon', node + ' ')}"
        f"{_form('drain', 'Move replicas off', node + ' ')}"
        f"{_form('scale', 'Scale', node + ' to ' + count + ' replicas ')}</p>"
        f"<p>{_form('resolve', 'Declare resolved (ends the drill)')}</p></div>"
    )


def facilitator_panel(faults: list[str], targets: list[str]) -> str:
    """Inject a catalog fault by hand (the facilitator's page only)."""
    fields = (
        f'<select name="fault">{_options(faults)}</select> on '
        f'<select name="target">{_options(targets)}</select> for '
        '<input name="duration_s" type="number" min="1" max="3600" value="30" size="4"> s '
    )
    form = _form("inject", "Inject", fields)
    return f'{_STYLE}<div class="drill"><h3>Inject by hand</h3>{form}</div>'
