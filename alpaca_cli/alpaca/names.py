"""Alpaca's names, the one definition: the subscription channels and what a symbol looks like.

Standard library only, so that the configuration (and with it every command's start-up) can
check a channel or a symbol without importing the codec and its msgspec schema. The codec, the
messages and the configuration all use these; nothing else spells them out.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CHANNELS", "is_valid_symbol"]

CHANNELS: Final[tuple[str, ...]] = (
    "trades",
    "quotes",
    "orderbooks",
    "bars",
    "updatedBars",
    "dailyBars",
)
"""Subscription channels in the order the server lists them."""

_SYMBOL = re.compile(r"[A-Z0-9]{1,15}/[A-Z0-9]{1,15}")


def is_valid_symbol(symbol: str) -> bool:
    """True for ``BASE/QUOTE`` in upper case (``BTC/USD``) and for the wildcard ``*``.

    Alpaca's own rule. One rule for every command: a lenient copy once let
    ``tail --symbol btc/usd`` filter out every message while ``subscribe`` refused the symbol.
    """
    return symbol == "*" or _SYMBOL.fullmatch(symbol) is not None
