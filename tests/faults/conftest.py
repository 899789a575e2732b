"""Fixtures of the fault tests: a fault proxy in front of an embedded gateway, and the CLI as a
subprocess (signals are only real in a process of its own)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.faultproxy import FaultProxy
from tests.run.conftest import RunProcess
from tests.support import child_env, embedded_platform


@pytest.fixture(scope="module")
def platform() -> Iterator[Any]:
    """One embedded platform with its Alpaca server, shared by a module's tests."""
    with embedded_platform(reconnect_base_delay=0.2) as running:
        yield running


@pytest.fixture
def proxy(platform: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the module's gateway (no faults until a test adds some)."""
    with FaultProxy(platform.gateway_url) as running:
        yield running


@pytest.fixture
def proxied_env(platform: Any, proxy: FaultProxy) -> dict[str, str]:
    """The platform's environment with the gateway's HTTP address pointing at the proxy."""
    return {**platform.env(), "VIRTUFIN_API_URL": proxy.url}


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``alpaca-md <args>`` as a process in ``tmp_path`` with ``env`` added."""
    started: list[RunProcess] = []

    def start(args: Sequence[str], env: Mapping[str, str]) -> RunProcess:
        full = child_env(env, unbuffered=False)
        proc = RunProcess(args, env=full, cwd=tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def workers(platform: Any) -> list[str]:
    return [w.id for w in platform.workmanager.list_workers()]


def connections(platform: Any) -> list[str]:
    return [c.id for c in platform.wsm.list()]
