"""Shared test set-up: an isolated environment for every test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

# Typer may emit colour codes under FORCE_COLOR/CI variables even in CliRunner.
os.environ["_TYPER_FORCE_DISABLE_TERMINAL"] = "1"

import pytest
from hypothesis import settings

# CI runs the property tests on a fixed series of examples, so a landing cannot fail on a case
# no developer run has met; developers' runs keep searching at random (and replay failures
# from .hypothesis/). HYPOTHESIS_PROFILE=ci reproduces CI's series locally.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The fixtures every area shares (the CLI, embedded platforms): one module, registered here.
pytest_plugins = ["tests.support", "tests.support_pubsub"]

_ISOLATED_PREFIXES = ("VIRTUFIN_", "ALPACA_", "DAPR_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Strip platform/Alpaca/Dapr variables so a developer's shell cannot leak into tests."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) or name == "ALPACA_MD_STATE":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture(autouse=True)
def restore_dapr_sdk_settings() -> Iterator[None]:
    """Undo values the CLI assigns on the dapr SDK's process-global settings object.

    The CLI points ``dapr.conf.settings`` at the resolved sidecar (one process per invocation in
    real use), but in-process CliRunner tests would leak those values into later tests that
    configure the SDK through ``DAPR_*`` environment variables.
    """
    yield
    sdk_conf = sys.modules.get("dapr.conf")
    if sdk_conf is not None:
        vars(sdk_conf.settings).clear()
