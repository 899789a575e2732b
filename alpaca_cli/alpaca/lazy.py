"""Package exports loaded on first use (PEP 562), shared by the protocol core and the feed.

Why: importing one light submodule of a package runs its ``__init__`` first. An ``__init__``
that imports every submodule to re-export their names makes that cost every importer's: the
configuration needs only :mod:`alpaca_cli.alpaca.names`, and ``dev up`` only the feed's config
and process modules, yet both paid for the codec's msgspec schema and the feed's market and
server. A package gives :func:`exports` its submodules, lightest first; a name is looked up in
them in order, each imported only when the search reaches it, and cached in the package.
Type checkers see the names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any

__all__ = ["exports"]


def exports(
    package: str, submodules: Sequence[str], names: Collection[str]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` for ``names`` (its ``__all__``)."""

    def __getattr__(name: str) -> Any:
        if name in names:
            for sub in submodules:
                module = importlib.import_module(f"{package}.{sub}")
                if hasattr(module, name):
                    value = getattr(module, name)
                    setattr(sys.modules[package], name, value)
                    return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
