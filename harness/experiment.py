"""Load, resolve and validate an experiment file.

An experiment is a Chaos Toolkit experiment (YAML or JSON). Its ``configuration`` holds flat
knobs (``--var NAME=VALUE`` overrides them, as ``chaos run --var`` does); its ``extensions``
list holds one ``gpuchaos`` block naming the workload, platform, load and SLOs, in which
``${name}`` is replaced by configuration values, as Chaos Toolkit does in activities.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.chaos.adapter import check_arguments, lookup, needs_platform
from harness.config import EXTENSION_NAME, HarnessSpec, KubernetesPlatformSpec
from harness.errors import ChaosError, ConfigError

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment: the Chaos Toolkit document as resolved, and the harness spec."""

    path: Path
    name: str  # file stem, used in run folder names
    document: dict[str, Any]  # configuration resolved, gpuchaos block substituted
    configuration: dict[str, Any]
    spec: HarnessSpec

    @property
    def title(self) -> str:
        return str(self.document.get("title", self.name))


def parse_vars(pairs: list[str], source: str = "--var") -> dict[str, Any]:
    """Parse ``NAME=VALUE`` pairs; values are read as YAML scalars (``30`` is an int)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(source, pair, "expected NAME=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[name.strip()] = value
    return out


def _read_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(str(path), "", "no such experiment file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), where, f"not valid YAML: {problem}") from None
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "", "expected a mapping (a Chaos Toolkit experiment)")
    return doc


def _resolve_configuration(
    path: Path, doc: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    from chaoslib.configuration import load_configuration

    raw = doc.get("configuration") or {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "configuration", "expected a mapping of names to values")
    unknown = sorted(set(overrides) - set(raw))
    if unknown:
        known = ", ".join(sorted(raw)) or "none"
        raise ConfigError(
            "--var", unknown[0], f"not a configuration key of {path} (known: {known})"
        )
    try:
        return dict(load_configuration(copy.deepcopy(raw), dict(overrides)))
    except Exception as exc:  # chaoslib raises its own errors for env-typed values
        raise ConfigError(str(path), "configuration", str(exc)) from None


def _find_extension(path: Path, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    exts = doc.get("extensions") or []
    if not isinstance(exts, list):
        raise ConfigError(str(path), "extensions", "expected a list of extension blocks")
    for i, ext in enumerate(exts):
        if isinstance(ext, dict) and ext.get("name") == EXTENSION_NAME:
            return i, ext
    raise ConfigError(
        str(path), "extensions", f"expected a block with name: {EXTENSION_NAME} (none found)"
    )


def _check_leftovers(path: Path, where: str, value: Any, config: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_leftovers(path, f"{where}.{k}", v, config)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_leftovers(path, f"{where}[{i}]", v, config)
    elif isinstance(value, str):
        m = _LEFTOVER.search(value)
        if m:
            raise ConfigError(
                str(path),
                where,
                f"${{{m.group(1)}}} names no configuration key "
                f"(known: {', '.join(sorted(config)) or 'none'})",
            )


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The activity lists of an experiment with their paths as the file writes them."""
    found = [
        (
            "steady-state-hypothesis.probes",
            (doc.get("steady-state-hypothesis") or {}).get("probes"),
        ),
        ("method", doc.get("method")),
        ("rollbacks", doc.get("rollbacks")),
    ]
    return [(where, acts) for where, acts in found if isinstance(acts, list)]


def _check_external_endpoint(path: Path, doc: dict[str, Any]) -> None:
    """With an external endpoint nothing is deployed: node and replica faults cannot run."""
    for where, activities in _sections(doc):
        for i, activity in enumerate(activities):
            if needs_platform(activity):
                func = (activity.get("provider") or {}).get("func")
                raise ConfigError(
                    str(path),
                    f"{where}[{i}]",
                    f"{func} needs a deployed workload (nodes, replicas); it is not available "
                    "with an external endpoint",
                )


def _check_faults(
    path: Path, doc: dict[str, Any], config: dict[str, Any], spec: HarnessSpec
) -> None:
    """Every fault activity must suit the experiment's platform and have arguments its
    fault takes (the registry's typed arguments), before anything is deployed."""
    from chaoslib import substitute

    kind = spec.platform.kind if spec.platform is not None else None
    for where, activities in _sections(doc):
        for i, activity in enumerate(activities):
            found = lookup(activity)
            if found is None or kind is None:
                continue
            func = (activity.get("provider") or {}).get("func")
            if found.fault.platform != kind:
                raise ConfigError(
                    str(path),
                    f"{where}[{i}].provider.module",
                    f"{func} is a {found.fault.platform} fault; this experiment runs on "
                    f"platform.kind: {kind}",
                )
            raw = (activity.get("provider") or {}).get("arguments") or {}
            arguments = dict(substitute(raw, config, {}) or {})
            try:
                check_arguments(found, arguments)
            except ChaosError as exc:
                raise ConfigError(str(path), f"{where}[{i}].provider.arguments", str(exc)) from None


def _check_load_placement(path: Path, prefix: str, spec: HarnessSpec) -> None:
    """Locust as Kubernetes Jobs runs in the platform's cluster: only with that platform."""
    if spec.load.workers_on != "kubernetes" or isinstance(spec.platform, KubernetesPlatformSpec):
        return
    got = "an external endpoint" if spec.platform is None else f"{spec.platform.kind} platform"
    raise ConfigError(
        str(path),
        f"{prefix}.load.workers_on",
        f"'kubernetes' needs platform.kind: kubernetes (got {got}); use 'local'",
    )


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """The error's location as the user wrote it: tagged unions (platform, load shape, ...)
    put their tag in pydantic's path (``platform.local.nodes``), which the file lacks."""
    parts: list[str] = []
    for item in loc:
        if item == "function-after":
            continue
        if isinstance(data, dict) and item not in data and data.get("kind") == item:
            continue  # the tag of a discriminated union
        parts.append(str(item))
        if isinstance(data, dict):
            data = data.get(item)
        elif isinstance(data, list) and isinstance(item, int) and item < len(data):
            data = data[item]
        else:
            data = None
    return ".".join(parts)


def _format_validation_error(
    path: Path, prefix: str, exc: ValidationError, data: Any = None
) -> ConfigError:
    err = exc.errors()[0]
    loc = _field_path(tuple(err["loc"]), data)
    field = f"{prefix}.{loc}" if loc else prefix
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] != "missing" and "input" in err:
        msg = f"{msg} (got {err['input']!r})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return ConfigError(str(path), field, msg)


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read, resolve and validate an experiment; every problem is a one-line ConfigError."""
    from chaoslib import substitute
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    p = Path(path)
    doc = _read_document(p)
    config = _resolve_configuration(p, doc, overrides or {})
    idx, ext = _find_extension(p, doc)
    resolved_ext = substitute(copy.deepcopy(ext), config, {})
    prefix = f"extensions[{idx}]"
    _check_leftovers(p, prefix, resolved_ext, config)
    try:
        spec = HarnessSpec.model_validate(resolved_ext)
    except ValidationError as exc:
        raise _format_validation_error(p, prefix, exc, resolved_ext) from None
    if spec.endpoint is not None:
        _check_external_endpoint(p, doc)
    _check_load_placement(p, prefix, spec)
    _check_faults(p, doc, config, spec)

    resolved = copy.deepcopy(doc)
    resolved["configuration"] = config
    resolved["extensions"][idx] = resolved_ext
    try:
        ensure_experiment_is_valid(copy.deepcopy(resolved))
    except ChaosException as exc:
        raise ConfigError(str(p), "", f"not a valid Chaos Toolkit experiment: {exc}") from None
    return Experiment(path=p, name=p.stem, document=resolved, configuration=config, spec=spec)
