"""The package's public surface: everything in ``__all__`` exists and nothing is left out."""

from __future__ import annotations

import importlib

import pytest

import alpaca_cli.alpaca as core

MODULES = ["book", "codec", "errors", "messages", "session", "timestamps"]


def test_every_exported_name_exists() -> None:
    for name in core.__all__:
        assert hasattr(core, name), name
    assert len(set(core.__all__)) == len(core.__all__)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "errors"])
def test_module_exports_are_re_exported_except_helpers(module: str) -> None:
    mod = importlib.import_module(f"alpaca_cli.alpaca.{module}")
    helpers = {"from_msgpack_timestamp", "to_msgpack_timestamp", "BAR_KINDS"}
    missing = set(mod.__all__) - set(core.__all__) - helpers
    assert not missing


def test_the_core_imports_no_io_or_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, alpaca_cli.alpaca; "
        "bad = {'asyncio', 'socket', 'pydantic', 'httpx', 'websockets', 'dapr', 'grpc'} "
        "& set(sys.modules); print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
