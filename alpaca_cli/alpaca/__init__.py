"""Sans-I/O Alpaca crypto stream core: codec, typed messages, L2 order book, error table.

No sockets, clocks or sleeps here: bytes in, typed messages and bytes out. The client (``run``,
``tail``) and the stand-in server (``dev feed``) share this one codec.
"""

from __future__ import annotations

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
    CHANNELS,
    Bar,
    DataMessage,
    Error,
    Message,
    OrderBookUpdate,
    Quote,
    Subscription,
    Success,
    Trade,
    Unknown,
)
from .timestamps import format_rfc3339, parse_rfc3339

__all__ = [
    "AUTH_REFUSALS",
    "CHANNELS",
    "ERRORS",
    "MAX_SYMBOLS_PER_MESSAGE",
    "AuthRequest",
    "Bar",
    "ClientMessage",
    "DataMessage",
    "DecodeError",
    "Error",
    "ErrorCode",
    "ErrorInfo",
    "Format",
    "Message",
    "OrderBookUpdate",
    "Quote",
    "Retry",
    "SubscribeRequest",
    "Subscription",
    "Success",
    "Trade",
    "Unknown",
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
