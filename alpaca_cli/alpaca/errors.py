"""Alpaca stream error codes: what each means and whether retrying helps.

Data, not control flow: the client decides what to do from :func:`error_info`, and the stand-in
stream server uses the same table to produce the exact messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class ErrorCode(IntEnum):
    """Codes of ``{"T":"error","code":...}`` messages (spec: "Errors")."""

    INVALID_SYNTAX = 400
    NOT_AUTHENTICATED = 401
    AUTH_FAILED = 402
    ALREADY_AUTHENTICATED = 403
    AUTH_TIMEOUT = 404
    SYMBOL_LIMIT_EXCEEDED = 405
    CONNECTION_LIMIT_EXCEEDED = 406
    SLOW_CLIENT = 407
    INSUFFICIENT_SUBSCRIPTION = 409
    INVALID_SUBSCRIBE_ACTION = 410
    INSUFFICIENT_SCOPE = 411
    INTERNAL_ERROR = 500

    def __str__(self) -> str:
        info = ERRORS[self]
        return f"{int(self)} {info.msg}"


class Retry(Enum):
    """What a client should do after an error."""

    NO = "no"
    REAUTH = "re-auth"
    HARMLESS = "harmless"
    RECONNECT = "reconnect"
    BACKOFF = "retry with backoff"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One row of the error table."""

    code: ErrorCode
    msg: str
    when: str
    retry: Retry


ERRORS: dict[ErrorCode, ErrorInfo] = {
    info.code: info
    for info in (
        ErrorInfo(
            ErrorCode.INVALID_SYNTAX,
            "invalid syntax",
            "malformed message, or a badly formed symbol",
            Retry.NO,
        ),
        ErrorInfo(
            ErrorCode.NOT_AUTHENTICATED, "not authenticated", "subscribe before auth", Retry.REAUTH
        ),
        ErrorInfo(ErrorCode.AUTH_FAILED, "auth failed", "wrong key or secret", Retry.NO),
        ErrorInfo(
            ErrorCode.ALREADY_AUTHENTICATED,
            "already authenticated",
            "a second auth",
            Retry.HARMLESS,
        ),
        ErrorInfo(
            ErrorCode.AUTH_TIMEOUT,
            "auth timeout",
            "no auth within 10 s of connecting",
            Retry.RECONNECT,
        ),
        ErrorInfo(
            ErrorCode.SYMBOL_LIMIT_EXCEEDED,
            "symbol limit exceeded",
            "plan's symbol limit; the request is rejected whole",
            Retry.NO,
        ),
        ErrorInfo(
            ErrorCode.CONNECTION_LIMIT_EXCEEDED,
            "connection limit exceeded",
            "the key already has its one connection on this endpoint",
            Retry.BACKOFF,
        ),
        ErrorInfo(
            ErrorCode.SLOW_CLIENT,
            "slow client",
            "the server's outbound buffer overflowed; it then disconnects",
            Retry.RECONNECT,
        ),
        ErrorInfo(
            ErrorCode.INSUFFICIENT_SUBSCRIPTION,
            "insufficient subscription",
            "the plan does not include this feed",
            Retry.NO,
        ),
        ErrorInfo(
            ErrorCode.INVALID_SUBSCRIBE_ACTION,
            "invalid subscribe action for this feed",
            "a channel this endpoint lacks",
            Retry.NO,
        ),
        ErrorInfo(
            ErrorCode.INSUFFICIENT_SCOPE,
            "insufficient scope",
            "the key's OAuth scope lacks market data",
            Retry.NO,
        ),
        ErrorInfo(ErrorCode.INTERNAL_ERROR, "internal error", "server side", Retry.BACKOFF),
    )
}

AUTH_REFUSALS = frozenset(
    {
        ErrorCode.AUTH_FAILED,
        ErrorCode.CONNECTION_LIMIT_EXCEEDED,
        ErrorCode.INSUFFICIENT_SUBSCRIPTION,
    }
)
"""Codes that arrive as the reply to ``auth`` and mean the session will not authenticate."""


def error_info(code: int) -> ErrorInfo | None:
    """The table row for ``code``, or None for a code the spec does not list."""
    try:
        return ERRORS[ErrorCode(code)]
    except ValueError:
        return None
