"""Shell completion for symbols, ids, topics, message types and choices (Typer ``autocompletion``).

Completion runs on every <TAB>, so it must be quick and must never fail loudly: each function
reads only local files (the settings and the state file, never the platform) and returns
nothing when they are missing or broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "choices",
    "complete_connection_ids",
    "complete_symbols",
    "complete_topics",
    "complete_types",
    "complete_worker_ids",
    "symbols_argument",
]

COMMON_SYMBOLS = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD", "LTC/USD", "SHIB/USD")
"""Offered beside the settings' and the state's symbols: Alpaca's most used crypto pairs."""


def _local(ctx: Any = None) -> tuple[Any, Any]:
    """``(config, state)`` as the command line typed so far names them; ``None`` when broken.

    ``--state``/``--settings`` already on the line (``ctx.params``) win, as they would when the
    command runs, so <TAB> offers the ids of the state file the command will use.
    """
    params = getattr(ctx, "params", None) or {}
    config = state = None
    try:
        from alpaca_cli.config import ConfigOptions, load_config

        def path(name: str) -> Path | None:
            value = params.get(name)
            return Path(value) if value else None

        options = ConfigOptions(
            state=path("state"), settings=path("settings"), env_file=path("env_file")
        )
        config = load_config(options)
        from alpaca_cli.state import StateStore

        state = StateStore(config.state_path).read()
    except Exception:  # a broken settings or state file must not break <TAB>
        pass
    return config, state


def _local_symbols(ctx: Any = None) -> list[str]:
    config, state = _local(ctx)
    found: list[str] = list(config.symbols) if config is not None else []
    if state is not None:
        for symbols in state.subscriptions.values():
            found += symbols
    return found


def complete_symbols(ctx: Any, incomplete: str) -> list[str]:
    """Symbols from the settings, the state file's subscriptions, then common pairs."""
    candidates = dict.fromkeys([*_local_symbols(ctx), *COMMON_SYMBOLS])
    wanted = incomplete.upper()
    return [s for s in candidates if s.startswith(wanted) and s != "*"]


def symbols_argument(help: str) -> Any:
    """The optional ``[SYMBOL]...`` argument (of run, subscribe, unsubscribe), completed from
    the local files; annotate it as ``list[str] | None`` with default ``None``."""
    return typer.Argument(
        metavar="[SYMBOL]...", help=help, show_default=False, autocompletion=complete_symbols
    )


SymbolsToSubscribe = Annotated[
    list[str] | None,
    symbols_argument("Symbols to subscribe to (BASE/QUOTE or *) [default: the settings' symbols]."),
]
"""``run``'s and ``subscribe``'s symbols."""


def complete_types(incomplete: str) -> list[str]:
    """``tail --type`` names."""
    from alpaca_cli.steps.tail import TYPE_ALIASES

    return [name for name in TYPE_ALIASES if name.startswith(incomplete.lower())]


def complete_worker_ids(ctx: Any, incomplete: str) -> list[str]:
    """The worker the state file names."""
    return _ids(ctx, incomplete, "worker")


def complete_connection_ids(ctx: Any, incomplete: str) -> list[str]:
    """The connection the state file names."""
    return _ids(ctx, incomplete, "connection")


def _ids(ctx: Any, incomplete: str, kind: str) -> list[str]:
    _, state = _local(ctx)
    if state is None:
        return []
    record = getattr(state, kind)
    return [record.id] if record is not None and record.id.startswith(incomplete) else []


def complete_topics(ctx: Any, incomplete: str) -> list[str]:
    """The topic the state's connection publishes to, then the configured one."""
    config, state = _local(ctx)
    found = [state.publish_topic] if state is not None and state.publish_topic else []
    if config is not None and config.topic:
        found.append(config.topic)
    return [t for t in dict.fromkeys(found) if t.startswith(incomplete)]


def choices(values: Iterable[str], *, several: bool = False) -> Callable[[str], list[str]]:
    """A completion function offering ``values`` (an option's fixed choices).

    ``several``: the option takes a comma-separated list (``--channel trades,quotes``), so the
    word is completed after its last comma, without the values already given.
    """
    fixed = tuple(values)

    def complete(incomplete: str) -> list[str]:
        if not several:
            return [v for v in fixed if v.startswith(incomplete)]
        done, _, last = incomplete.rpartition(",")
        given = set(done.split(",")) if done else set()
        prefix = f"{done}," if done else ""
        return [prefix + v for v in fixed if v.startswith(last) and v not in given]

    return complete
