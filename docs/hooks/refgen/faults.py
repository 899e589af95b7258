"""Every fault with its arguments, from the fault registry."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from refgen import GENERATED_NOTE, NONE, cell
from refgen.models import anchor, model_section


def _docstring_paragraphs(obj: Any) -> str:
    module = sys.modules.get(obj.__module__)
    parts = [inspect.getdoc(module) if module else "", inspect.getdoc(obj) or ""]
    return "\n\n".join(p for p in parts if p)


def faults_page() -> str:
    from harness.faults import registry

    out = [
        "# Faults and their arguments\n",
        GENERATED_NOTE,
        "Every fault in the registry (`harness/faults/registry.py`: the built-in ones in "
        "`harness/faults/builtin/` and any registered through the `gpuchaos.faults` entry "
        "point), grouped by platform. An experiment calls a local fault as "
        "`module: harness.chaos.actions` and a cluster fault as `module: harness.chaos.k8s`, "
        "with `func:` the fault's name and the arguments below. The "
        "[fault catalog](../faults.md) explains them with their CPU stand-ins.\n",
        "| fault | platform | what it does | proof | revert action | hold |",
        "|---|---|---|---|---|---|",
    ]
    all_faults = registry.faults()
    for fault in all_faults:
        out.append(
            f"| [`{fault.name}`](#{fault.platform}-{fault.name}) | {fault.platform} "
            f"| {cell(fault.summary)} | {cell(fault.proves)} "
            f"| {f'`{fault.revert_action}`' if fault.revert_action else NONE} | {fault.hold} |"
        )
    out.append("")
    holds = {
        "none": "instant: nothing to undo",
        "timed": "held `duration_s`, then reverted",
        "open": "held `duration_s`; `duration_s: 0` leaves it until its revert action, the "
        "run's end or its time-to-live",
    }
    for fault in all_faults:
        module = "harness.chaos.k8s" if fault.platform == "kubernetes" else "harness.chaos.actions"
        out.append(f"## `{fault.name}` ({fault.platform}) {{#{fault.platform}-{fault.name}}}\n")
        out.append(f"{fault.summary}.\n" if fault.summary else "")
        out.append(
            f"- module: `{module}`, target argument: `{fault.target_arg}`\n"
            f"- proves: {fault.proves or NONE}\n"
            f"- revert action: {f'`{fault.revert_action}`' if fault.revert_action else NONE}\n"
            f"- hold: {holds.get(fault.hold, fault.hold)}\n"
            f"- defined in: `{type(fault).__module__}`\n"
        )
        if fault.aliases:
            olds = ", ".join(f"`{old}` → `{new}`" for old, new in fault.aliases.items())
            out.append(f"- old argument names still accepted: {olds}\n")
        out.append(
            model_section(fault.args, level=3).replace(
                f"### {fault.args.__name__} {{#{anchor(fault.args)}}}",
                f"### Arguments {{#{fault.platform}-{fault.name}-args}}",
            )
        )
        doc = _docstring_paragraphs(type(fault))
        if doc:
            out.append(
                '??? info "From the source"\n\n'
                + "\n".join(f"    {line}" if line else "" for line in doc.splitlines())
                + "\n"
            )
    return "\n".join(out)
