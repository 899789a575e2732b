"""The one place tests get an embedded platform and the CLI: an isolated working directory,
the in-process CLI, and embedded platforms on loopback (started once per module, every port 0).

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``). A test that needs
a platform with other knobs calls :func:`platform` with :class:`StackConfig` fields; every
fixture here is built on it. Add fixtures, never change the meaning of an existing one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from alpaca_cli.main import app


@dataclass
class Cli:
    """Runs ``alpaca-md`` in-process in ``cwd`` with a base environment."""

    cwd: Path
    env: dict[str, str]

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, input: str | None = None
    ) -> Result:
        merged: dict[str, str | None] = {**self.env, **(env or {})}
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            return CliRunner().invoke(app, list(args), env=merged, input=input)
        finally:
            os.chdir(old)

    @property
    def state_path(self) -> Path:
        return self.cwd / ".alpaca-md" / "state.json"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no ./.env, no ./settings): packaged settings apply."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(workdir: Path) -> Cli:
    """The CLI with no platform configured (VIRTUFIN_API_URL unset)."""
    return Cli(cwd=workdir, env={})


@contextmanager
def embedded_platform(**config: Any) -> Iterator[Any]:
    """A started embedded platform in a thread (every port 0); ``config`` are
    :meth:`StackConfig.ephemeral` keywords (``feed=False``, knobs...)."""
    from alpaca_cli.devstack.stack import StackConfig, start_in_thread

    with start_in_thread(StackConfig.ephemeral(**config)) as running:
        yield running


@pytest.fixture(scope="module")
def embedded() -> Iterator[Any]:
    """An embedded platform without the Alpaca feed: gateway, WorkManager, WSM, sidecar."""
    with embedded_platform(feed=False) as running:
        yield running


@pytest.fixture
def platform_cli(workdir: Path, embedded: Any, bus: str) -> Cli:
    """The CLI aimed at the module's embedded platform, over each bus in turn."""
    return Cli(cwd=workdir, env=bus_env(embedded.env(), bus))


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def embedded_with_feed() -> Iterator[Any]:
    """An embedded platform with its Alpaca stream server (``.env()`` has ALPACA_* too)."""
    with embedded_platform() as running:
        yield running


@pytest.fixture
def feed_cli(workdir: Path, embedded_with_feed: Any, bus: str) -> Cli:
    """The CLI aimed at the module's embedded platform with a feed, over each bus in turn."""
    return Cli(cwd=workdir, env=bus_env(embedded_with_feed.env(), bus))


BUSES = ("dapr", "gateway")
"""The two ways to the platform's pub/sub: a local Dapr sidecar (a job in the cluster) and the
gateway's gRPC ``virtufin.Pubsub`` (an ops shell that reaches only the gateway)."""


@pytest.fixture(params=BUSES)
def bus(request: pytest.FixtureRequest) -> str:
    """Each CLI test that talks to a platform runs once per bus."""
    return str(request.param)


def child_env(*layers: Mapping[str, str], unbuffered: bool = True) -> dict[str, str]:
    """The environment of an ``alpaca-md`` child process: ours without pytest's own variables,
    then ``layers``. ``unbuffered=False`` drops ``PYTHONUNBUFFERED``: the development machines
    set it, and it hides buffering bugs of tails (``cli-conventions.md``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    for layer in layers:
        env.update(layer)
    if not unbuffered:
        env.pop("PYTHONUNBUFFERED", None)
    return env


def bus_env(env: Mapping[str, str], bus: str) -> dict[str, str]:
    """What ``dev up --write-env`` wrote, as an operator on ``bus`` has it: the gateway bus gets
    no ``DAPR_*`` variable at all (``--bus auto`` then picks the gateway by itself)."""
    if bus == "dapr":
        return dict(env)
    return {k: v for k, v in env.items() if not k.startswith("DAPR_")}


def gateway_call(platform: Any, service: str, method: str, request: dict[str, Any]) -> Any:
    """Call the embedded gateway directly (test set-up and checks, not the code under test)."""
    import json

    import httpx

    body = {"service": service, "method": method, "request_data": json.dumps(request)}
    with httpx.Client() as client:
        answer = client.post(f"{platform.gateway_url}/v1/gateway/invoke-json", json=body).json()
    assert answer["success"], answer
    return json.loads(answer.get("response_data") or "{}")


FAKE_DOTNET = """#!/bin/sh
# fake dotnet: records its argv, then behaves as FAKE_DOTNET_MODE says
echo "$@" > "$FAKE_DOTNET_LOG"
out=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then out="$2"; fi
  shift
done
echo "  Restored project"
case "$FAKE_DOTNET_MODE" in
  fail) echo "error CS1002: ; expected"; exit 1 ;;
  nozip) mkdir -p "$out"; exit 0 ;;
  *) mkdir -p "$out"
     if [ -n "$FAKE_DOTNET_ZIP" ]; then cp "$FAKE_DOTNET_ZIP" "$out/worker.zip"
     else printf 'PK-fake-worker-zip' > "$out/worker.zip"; fi
     echo "  done"; exit 0 ;;
esac
"""


@pytest.fixture
def fake_dotnet(tmp_path: Path, workdir: Path) -> dict[str, str]:
    """A fake ``dotnet`` first on PATH, and a ``proj`` directory in the working directory.

    ``FAKE_DOTNET_MODE`` = fail | nozip changes what it does; ``FAKE_DOTNET_ZIP`` names a file
    it copies to ``<out>/worker.zip``; it records its argv in ``FAKE_DOTNET_LOG``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dotnet"
    script.write_text(FAKE_DOTNET)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (workdir / "proj").mkdir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_DOTNET_LOG": str(tmp_path / "dotnet.log"),
    }
