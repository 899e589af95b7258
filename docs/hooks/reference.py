"""The docs' reference pages, generated from the code at build time (a MkDocs hook).

Why generated: every block of an experiment is a strict pydantic model with a description
on every field, the CLI is one argparse tree, faults live in one registry, and the servers'
metrics in one registry each. A hand-written reference of the same would drift the day
someone adds a field; this one cannot. The pages are added to the build as generated
files (``on_files``): nothing is written into ``docs/``, so no generated page can be edited
by hand or committed. ``tests/unit/test_docs_reference.py`` walks the models, the CLI and
the fault registry on its own and checks that every field, flag and fault appears here.

``python docs/hooks/reference.py OUT_DIR`` writes the same pages to a folder (to read them
without building the site).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, Path(__file__).resolve().parent):  # the checkout's harness; refgen
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from refgen.catalog import catalog_page  # noqa: E402
from refgen.cli import cli_page  # noqa: E402
from refgen.faults import faults_page  # noqa: E402
from refgen.models import experiment_page, model_section, walk_models  # noqa: E402
from refgen.runfolder import metrics_page  # noqa: E402

__all__ = ["PAGES", "model_section", "on_files", "pages", "walk_models"]

PAGES: dict[str, Callable[[], str]] = {
    "reference/experiment.md": experiment_page,
    "reference/cli.md": cli_page,
    "reference/faults.md": faults_page,
    "reference/metrics.md": metrics_page,
    "reference/catalog.md": catalog_page,
}


def pages() -> dict[str, str]:
    """Every generated page: its path under docs/ and its Markdown."""
    return {path: build() for path, build in PAGES.items()}


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages to the build (nothing is written to docs/)."""
    from mkdocs.structure.files import File

    for path, text in pages().items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=text))
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "site-reference")
    for rel, text in pages().items():
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(out)
