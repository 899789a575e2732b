"""Without node or the installed clients, tests/js skips and says why (never fails)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import PACKAGES, why_not_runnable  # type: ignore[import-not-found]  # no package


def test_no_node_is_a_skip_reason() -> None:
    reason = why_not_runnable(None)
    assert reason is not None and "node is not installed" in reason


def test_clients_not_installed_is_a_skip_reason(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node to get past the first check")
    reason = why_not_runnable(node, tmp_path)
    assert reason is not None and "make test" in reason
    for package in PACKAGES:
        assert package in reason


def test_a_node_that_does_not_run_is_a_skip_reason(tmp_path: Path) -> None:
    assert "too old" in (why_not_runnable(str(tmp_path / "no-such-node")) or "")
