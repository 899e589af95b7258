"""One tenant's view of a tenancy run folder: the single-tenant run folder the existing scorer
scores, built from the shared files.

Why views: a tenancy run writes ONE timeline and ONE telemetry file for every tenant, and a
request log per tenant (``tenants/<name>/requests.csv``). Scoring each tenant with the
scorer every single-tenant run uses (same SLO definitions, same recovery analytics) needs a
folder that looks like a single-tenant run: this module writes it. A view holds:

- ``experiment.yaml``: the tenant's derived experiment, ``tenants/<name>/experiment.yaml``
  as the run wrote it (derived here from the root experiment when it is missing:
  :func:`tenant_document`);
- ``requests.csv``: the tenant's own records;
- ``timeline.jsonl``: the events whose ``details.tenant`` is the tenant, and every event that
  names no tenant (the run's start and end, the faults' starts and ends, the load phases), so
  each tenant sees every fault window and is scored on what it did to that tenant;
- ``telemetry.csv``: the rows of the tenant's sources (replica ids, view node names and
  anything else that starts ``<name>-``; its load generator's, named ``locust`` as in a
  single-tenant run: :func:`view_source`) and the rows of sources that belong to no tenant
  (``gpuN``, ``system``, ``platform``, ``harness``).

When the scorecard is written, ``tenants/<name>/`` itself becomes the view (the derived
timeline and telemetry are written there beside the records), so each tenant folder is a
run folder that ``gpuchaos report`` draws; otherwise the view is a scratch folder.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.config import HarnessSpec
from harness.config.tenancy_layout import tenant_document, tenant_of
from harness.rundir import EXPERIMENT_FILE, REQUESTS_FILE, RunDir

log = logging.getLogger(__name__)

#: The folder of a tenancy run that holds one folder per tenant.
TENANTS_DIR = "tenants"


def tenant_dir(run_dir: str | os.PathLike[str], name: str) -> Path:
    """``run_dir/tenants/<name>``: the tenant's records, experiment and (scored) view."""
    return Path(run_dir) / TENANTS_DIR / name


def event_tenant(event: Mapping[str, Any]) -> str | None:
    """The tenant an event belongs to (``details.tenant``), None when it names none."""
    details = event.get("details")
    tenant = details.get("tenant") if isinstance(details, Mapping) else None
    return tenant if isinstance(tenant, str) and tenant else None


def tenant_events(events: Iterable[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    """The events of tenant ``name``'s view: its own and those of no tenant."""
    return [e for e in events if event_tenant(e) in (None, name)]


def _write_events(events: Iterable[Mapping[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, default=str) + "\n")


def view_source(source: str, name: str, names: list[str]) -> str | None:
    """A telemetry source as tenant ``name``'s view has it, None when it is another tenant's.

    The tenants' load generators are ``locust`` (the first tenant's) and ``locust-<tenant>``
    (:mod:`harness.load.tenants`): the tenant's own becomes ``locust`` (what the scorer's
    instrument check reads), the others' are left out."""
    if source == "locust":
        return source if name == names[0] else None
    if source.startswith("locust-") and source[len("locust-") :] in names:
        return "locust" if source == f"locust-{name}" else None
    return source if tenant_of(source, names) in (None, name) else None


def _copy_telemetry(src: Path, dest: Path, name: str, names: list[str]) -> None:
    """The rows of ``src`` whose source is tenant ``name``'s or no tenant's (see module);
    lines are copied as they are (a torn one is left to the scorer's reader)."""
    with (
        open(src, encoding="utf-8", errors="replace", newline="") as fin,
        open(dest, "w", encoding="utf-8", newline="") as fout,
    ):
        reader = csv.reader(fin)
        writer = csv.writer(fout)
        header = next(reader, None)
        if header is None:
            return
        writer.writerow(header)
        column = header.index("source") if "source" in header else 1
        for row in reader:
            if len(row) > column:
                source = view_source(row[column], name, names)
                if source is None:
                    continue
                row[column] = source
            writer.writerow(row)


def _link(src: Path, dest: Path) -> None:
    """``dest`` as a symlink to ``src`` (a copy where links are refused)."""
    try:
        os.symlink(src.resolve(), dest)
    except OSError:
        shutil.copyfile(src, dest)


def build_view(
    run_dir: Path,
    doc: Mapping[str, Any],
    spec: HarnessSpec,
    name: str,
    events: list[dict[str, Any]] | None,
    dest: Path,
    warnings: list[str],
) -> Path:
    """Write tenant ``name``'s view (see module) into ``dest`` and return it. ``events`` are
    the run's timeline events (None: the run has no timeline, and neither has the view)."""
    assert spec.tenancy is not None
    names = spec.tenancy.names()
    own = tenant_dir(run_dir, name)
    dest.mkdir(parents=True, exist_ok=True)
    if (own / EXPERIMENT_FILE).is_file():
        if own.resolve() != dest.resolve():
            shutil.copyfile(own / EXPERIMENT_FILE, dest / EXPERIMENT_FILE)
    else:
        warnings.append(
            f"{TENANTS_DIR}/{name}/{EXPERIMENT_FILE}: missing; derived from the run's experiment"
        )
        text = yaml.safe_dump(tenant_document(doc, spec, name), sort_keys=False)
        (dest / EXPERIMENT_FILE).write_text(text, encoding="utf-8")
    if own.resolve() != dest.resolve() and (own / REQUESTS_FILE).is_file():
        _link(own / REQUESTS_FILE, dest / REQUESTS_FILE)
    paths, view = RunDir(run_dir), RunDir(dest)
    if events is not None:
        _write_events(tenant_events(events, name), view.timeline)
    elif view.timeline.exists():
        view.timeline.unlink()
    if paths.telemetry.is_file():
        _copy_telemetry(paths.telemetry, view.telemetry, name, names)
    elif view.telemetry.exists():
        view.telemetry.unlink()
    log.debug("view of tenant %s written to %s", name, dest)
    return dest
