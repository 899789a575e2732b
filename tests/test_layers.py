"""The layout is the architecture: imports point down only (ARCHITECTURE.md).

``main -> commands -> steps -> runtime/live -> platform -> alpaca``; ``devstack`` beside them.
Read from the source (every ``import``, at module level or inside a function), so a lazy import
that runs back up the layers is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "alpaca_cli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = (package or _module_name(path)).split(".")
                base = base[: len(base) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return {name for name in found if name.startswith("alpaca_cli")}


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# What each layer may import (besides itself): strictly lower layers only.
ALLOWED: dict[str, set[str]] = {
    "alpaca": set(),
    "errors": set(),
    "startup": set(),
    "closing": set(),
    "redact": {"errors"},
    "config": {"errors", "alpaca"},
    "state": {"errors"},
    "platform": {"errors", "closing", "alpaca", "config", "redact"},
    "stream": {"errors", "closing", "alpaca", "platform"},
    "output": {"errors"},
    "signals": {"errors"},
    "runtime": {"errors", "closing", "config", "state", "redact", "platform", "stream", "startup"},
    "live": {"errors", "closing", "alpaca", "platform", "stream", "config", "output", "signals"},
    "steps": {
        "errors",
        "closing",
        "alpaca",
        "platform",
        "stream",
        "config",
        "state",
        "runtime",
        "live",
        "output",
        "signals",
        "redact",
    },
    "devstack": {"alpaca", "errors"},
}


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_imports_point_down_only(module: str) -> None:
    layer = _layer(module)
    if layer in ("main", "commands", "__main__", "") or layer.startswith("_"):
        return  # the top: may import anything below it
    allowed = ALLOWED.get(layer)
    assert allowed is not None, f"{module}: a layer ALLOWED does not know; add it"
    upward = sorted(name for name in MODULES[module] if _layer(name) not in {layer, *allowed, ""})
    assert upward == [], f"{module} imports up or across the layers: {upward}"


def test_only_main_and_commands_import_commands() -> None:
    offenders = sorted(
        module
        for module, imported in MODULES.items()
        if any(name.startswith("alpaca_cli.commands") for name in imported)
        and _layer(module) not in ("main", "commands")
    )
    assert offenders == []


def test_the_cli_imports_the_embedded_platform_only_in_the_dev_commands() -> None:
    offenders = sorted(
        module
        for module, imported in MODULES.items()
        if any(name.startswith("alpaca_cli.devstack") for name in imported)
        and _layer(module) != "devstack"
        and not module.startswith("alpaca_cli.commands.dev")
    )
    assert offenders == []


def test_the_configuration_checks_names_without_importing_the_codec() -> None:
    """``config`` needs Alpaca's channel list and symbol rule, not its msgspec schema."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import alpaca_cli.config\n"
        "print(sorted(m for m in sys.modules if m.startswith('alpaca_cli.alpaca')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = "['alpaca_cli.alpaca', 'alpaca_cli.alpaca.lazy', 'alpaca_cli.alpaca.names']"
    assert out.strip() == loaded
