"""Load, resolve and validate an experiment file: every problem one line, before deploy.

An experiment is a Chaos Toolkit experiment (YAML or JSON). Its ``configuration`` holds flat
knobs (``--var NAME=VALUE`` overrides them, as ``chaos run --var`` does); its ``extensions``
list holds one ``gpuchaos`` block naming the workload, platform, load and SLOs, in which
``${name}`` is replaced by configuration values, as Chaos Toolkit does in activities.

The order of the checks is the order a reader would fix them in: the file itself
(:mod:`~harness.experiment.document`), the configuration and ``--var`` overrides, the Chaos
Toolkit sections as they will run (:mod:`~harness.experiment.chaos_model`), the ``gpuchaos``
block (:mod:`harness.config`), the code the experiment would import
(:mod:`~harness.experiment.modules`), then the activities against the spec and the machine
(:mod:`~harness.experiment.activities`). chaoslib's own validation runs last, as a net.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.config import EXTENSION_NAME, HarnessSpec
from harness.errors import ConfigError
from harness.experiment.activities import (
    check_external_endpoint,
    check_faults,
    check_leftovers,
    check_load_placement,
    check_machine,
)
from harness.experiment.chaos_model import ChaosDocument
from harness.experiment.document import read_document
from harness.experiment.fields import choices, format_validation_error
from harness.experiment.modules import check_modules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment: the Chaos Toolkit document as resolved, and the harness spec."""

    path: Path
    name: str  # file stem, used in run folder names
    document: dict[str, Any]  # configuration resolved, gpuchaos block substituted
    configuration: dict[str, Any]
    spec: HarnessSpec
    #: the Python modules its activities and controls import, in file order
    modules: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        return str(self.document.get("title", self.name))


def parse_vars(pairs: list[str], source: str = "--var") -> dict[str, Any]:
    """Parse ``NAME=VALUE`` pairs; values are read as YAML scalars (``30`` is an int)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(source, pair[:60], "expected NAME=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[name.strip()] = value
    return out


def _resolve_configuration(
    path: Path, doc: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    from chaoslib.configuration import load_configuration

    raw = doc.get("configuration") or {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "configuration", "expected a mapping of names to values")
    unknown = sorted(set(overrides) - set(raw))
    if unknown:
        hint = choices(unknown[0], set(map(str, raw)))
        raise ConfigError("--var", unknown[0], f"not a configuration key of {path} ({hint})")
    try:
        return dict(load_configuration(copy.deepcopy(raw), dict(overrides)))
    except Exception as exc:  # chaoslib raises its own errors for env-typed values
        raise ConfigError(str(path), "configuration", str(exc)[:150]) from None


def _find_extension(path: Path, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    exts = doc.get("extensions") or []
    if not isinstance(exts, list):
        raise ConfigError(str(path), "extensions", "expected a list of extension blocks")
    found = [
        i
        for i, ext in enumerate(exts)
        if isinstance(ext, dict) and ext.get("name") == EXTENSION_NAME
    ]
    if not found:
        raise ConfigError(
            str(path), "extensions", f"expected a block with name: {EXTENSION_NAME} (none found)"
        )
    if len(found) > 1:
        raise ConfigError(
            str(path),
            f"extensions[{found[1]}]",
            f"a second block with name: {EXTENSION_NAME} (expected one)",
        )
    return found[0], exts[found[0]]


def _as_run(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The document as chaoslib will run it: the configuration substituted everywhere but in
    the extension blocks (the harness substitutes its own) and the secrets."""
    from chaoslib import substitute

    view = {
        k: (v if k in ("extensions", "secrets", "configuration") else substitute(v, config, {}))
        for k, v in copy.deepcopy(doc).items()
    }
    view["configuration"] = config
    return view


def _secret_names(doc: dict[str, Any]) -> set[str]:
    scopes = doc.get("secrets") or {}
    if not isinstance(scopes, dict):
        return set()
    return {str(k) for scope in scopes.values() if isinstance(scope, dict) for k in scope}


def load_experiment(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    allow_modules: tuple[str, ...] | list[str] = (),
) -> Experiment:
    """Read, resolve and validate an experiment; every problem is a one-line ConfigError.
    ``allow_modules``: modules (and their submodules) its activities and controls may
    come from besides the harness's and chaostoolkit-kubernetes."""
    from chaoslib import substitute

    p = Path(path)
    doc = read_document(p)
    config = _resolve_configuration(p, doc, overrides or {})
    view = _as_run(doc, config)
    try:
        chaos = ChaosDocument.model_validate(view)
    except ValidationError as exc:
        raise format_validation_error(p, "", exc, view) from None
    known = set(map(str, config)) | _secret_names(doc)
    for section in ("controls", "steady-state-hypothesis", "method", "rollbacks"):
        check_leftovers(p, section, view.get(section), known)

    idx, ext = _find_extension(p, doc)
    resolved_ext = substitute(copy.deepcopy(ext), config, {})
    prefix = f"extensions[{idx}]"
    check_leftovers(p, prefix, resolved_ext, set(map(str, config)))
    try:
        spec = HarnessSpec.model_validate(resolved_ext)
    except ValidationError as exc:
        raise format_validation_error(p, prefix, exc, resolved_ext) from None

    modules = check_modules(p, chaos, tuple(allow_modules))
    if spec.endpoint is not None:
        check_external_endpoint(p, doc)
    check_load_placement(p, prefix, spec)
    check_faults(p, view, spec)
    check_machine(p, prefix, spec)

    resolved = copy.deepcopy(doc)
    resolved["configuration"] = config
    resolved["extensions"][idx] = resolved_ext
    _chaoslib_net(p, resolved)
    return Experiment(
        path=p,
        name=p.stem,
        document=resolved,
        configuration=config,
        spec=spec,
        modules=tuple(modules),
    )


def _chaoslib_net(path: Path, resolved: dict[str, Any]) -> None:
    """chaoslib's own validation, last: what the models above let through it may still
    refuse (an argument the function's signature lacks). Any exception of it is a line."""
    from chaoslib.experiment import ensure_experiment_is_valid

    try:
        ensure_experiment_is_valid(copy.deepcopy(resolved))
    except Exception as exc:
        problem = f"not a valid Chaos Toolkit experiment: {exc}"
        raise ConfigError(str(path), "", problem[:180]) from None
