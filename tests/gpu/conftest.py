"""GPU tests: marked ``gpu`` and skipped where CUDA is not available."""

from __future__ import annotations

import pytest


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = _cuda()
    for item in items:
        item.add_marker(pytest.mark.gpu)
        if not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
