"""Real JavaScript clients against the stand-ins: where they live and when they can run.

The clients are pinned in ``package.json`` / ``package-lock.json`` beside this file and
installed by ``make test`` (``npm ci``) into ``tests/js/node_modules`` (git-ignored). Without
``node``, or when the install did not happen (offline, no npm), every test here is skipped
with the reason, so the rest of the suite never depends on a JavaScript toolchain.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

collect_ignore = ["node_modules"]

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
PACKAGES = ("@alpacahq/alpaca-trade-api", "@dapr/dapr")
MIN_NODE = 20


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return int(out.stdout.strip().lstrip("v").split(".", 1)[0])
    except ValueError:
        return None


def why_not_runnable(node: str | None, node_modules: Path = NODE_MODULES) -> str | None:
    """Why the JavaScript client tests cannot run here, or None when they can."""
    if node is None:
        return "node is not installed: the JavaScript client checks need Node 20+ and npm"
    major = _node_major(node)
    if major is None or major < MIN_NODE:
        return f"node {major} is too old: the JavaScript clients need Node {MIN_NODE}+"
    missing = [p for p in PACKAGES if not (node_modules / p / "package.json").is_file()]
    if missing:
        return (
            f"JavaScript clients not installed ({', '.join(missing)}): run `make test`, which "
            "runs `npm ci --prefix tests/js`; the install fails offline"
        )
    return None


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable, once the pinned clients are installed; else skip with why."""
    found = shutil.which("node")
    reason = why_not_runnable(found)
    if reason is not None:
        pytest.skip(reason)
    assert found is not None
    return found
