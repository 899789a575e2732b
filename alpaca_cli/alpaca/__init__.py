"""Sans-I/O Alpaca crypto stream core: codec, typed messages, L2 order book, error table.

No sockets, clocks or sleeps here: bytes in, typed messages and bytes out. The client (``run``,
``tail``) and the stand-in server (``dev feed``) share this one codec.

The names below load their submodule on first use (:mod:`.lazy`): importing one light
submodule, such as :mod:`.names` for the configuration, does not import the codec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import exports

if TYPE_CHECKING:
    from .book import Books, OrderBook, PriceSize
    from .codec import (
        MAX_SYMBOLS_PER_MESSAGE,
        AuthRequest,
        ClientMessage,
        DecodeError,
        Format,
        SubscribeRequest,
        decode,
        decode_client_message,
        decode_json,
        decode_msgpack,
        encode_auth,
        encode_client_message,
        encode_frame,
        encode_subscribe,
        is_valid_symbol,
        to_wire,
    )
    from .errors import AUTH_REFUSALS, ERRORS, ErrorCode, ErrorInfo, Retry, error_info
    from .messages import (
        BAR_CLASSES,
        CHANNELS,
        Bar,
        BarKind,
        DailyBar,
        DataMessage,
        Error,
        Level,
        Message,
        MinuteBar,
        OrderBookUpdate,
        Quote,
        Subscription,
        Success,
        Trade,
        Unknown,
        UpdatedBar,
    )
    from .session import (
        AlpacaFailure,
        Authenticated,
        ClientSession,
        DataResumed,
        Event,
        RehandshakeNeeded,
        SessionState,
        SubscriptionConfirmed,
        Welcome,
        backoff_delays,
    )
    from .timestamps import format_rfc3339, parse_rfc3339

__all__ = [
    "AUTH_REFUSALS",
    "BAR_CLASSES",
    "CHANNELS",
    "ERRORS",
    "MAX_SYMBOLS_PER_MESSAGE",
    "AlpacaFailure",
    "AuthRequest",
    "Authenticated",
    "Bar",
    "BarKind",
    "Books",
    "ClientMessage",
    "ClientSession",
    "DailyBar",
    "DataMessage",
    "DataResumed",
    "DecodeError",
    "Error",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "Format",
    "Level",
    "Message",
    "MinuteBar",
    "OrderBook",
    "OrderBookUpdate",
    "PriceSize",
    "Quote",
    "RehandshakeNeeded",
    "Retry",
    "SessionState",
    "SubscribeRequest",
    "Subscription",
    "SubscriptionConfirmed",
    "Success",
    "Trade",
    "Unknown",
    "UpdatedBar",
    "Welcome",
    "backoff_delays",
    "decode",
    "decode_client_message",
    "decode_json",
    "decode_msgpack",
    "encode_auth",
    "encode_client_message",
    "encode_frame",
    "encode_subscribe",
    "error_info",
    "format_rfc3339",
    "is_valid_symbol",
    "parse_rfc3339",
    "to_wire",
]

__getattr__ = exports(
    __name__, ("timestamps", "errors", "messages", "book", "codec", "session"), __all__
)
