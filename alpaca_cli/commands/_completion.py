"""Shell completion for symbols, message types and choice values (Typer ``autocompletion``).

Completion runs on every <TAB>, so it must be quick and must never fail loudly: each function
reads only local files (the settings and the state file, never the platform) and returns
nothing when they are missing or broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["choices", "complete_symbols", "complete_types"]

COMMON_SYMBOLS = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD", "LTC/USD", "SHIB/USD")
"""Offered beside the settings' and the state's symbols: Alpaca's most used crypto pairs."""


def _local_symbols() -> list[str]:
    found: list[str] = []
    try:
        from alpaca_cli.config import load_config

        config = load_config()
        found += list(config.symbols)
        from alpaca_cli.state import StateStore

        state = StateStore(config.state_path).read()
        if state is not None:
            for symbols in state.subscriptions.values():
                found += symbols
    except Exception:  # a broken settings or state file must not break <TAB>
        pass
    return found


def complete_symbols(incomplete: str) -> list[str]:
    """Symbols from the state file's subscriptions, the settings, then common pairs."""
    candidates = dict.fromkeys([*_local_symbols(), *COMMON_SYMBOLS])
    wanted = incomplete.upper()
    return [s for s in candidates if s.startswith(wanted) and s != "*"]


def complete_types(incomplete: str) -> list[str]:
    """``tail --type`` names."""
    from alpaca_cli.steps.tail import TYPE_ALIASES

    return [name for name in TYPE_ALIASES if name.startswith(incomplete.lower())]


def choices(values: Iterable[str]) -> Callable[[str], list[str]]:
    """A completion function offering ``values`` (an option's fixed choices)."""
    fixed = tuple(values)

    def complete(incomplete: str) -> list[str]:
        return [v for v in fixed if v.startswith(incomplete)]

    return complete
