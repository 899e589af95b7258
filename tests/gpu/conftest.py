"""GPU tests: marked ``gpu`` and skipped where CUDA is not available."""

from __future__ import annotations

from pathlib import Path

import pytest


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # this hook sees the whole session's items: touch only the ones in tests/gpu
    mine = [i for i in items if HERE in Path(str(i.path)).parents]
    has_cuda = _cuda() if mine else False
    for item in mine:
        item.add_marker(pytest.mark.gpu)
        if not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
