"""Shared test set-up: an isolated environment for every test."""

from __future__ import annotations

import os

# Typer may emit colour codes under FORCE_COLOR/CI variables even in CliRunner.
os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"

import pytest

_ISOLATED_PREFIXES = ("VIRTUFIN_", "ALPACA_", "DAPR_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Strip platform/Alpaca/Dapr variables so a developer's shell cannot leak into tests."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) or name == "ALPACA_MD_STATE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
