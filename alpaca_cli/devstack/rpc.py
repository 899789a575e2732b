"""The error every embedded service raises, carrying the gRPC status name the gateway reports.

The real services are gRPC servers behind the gateway; a failure reaches a client in-band as
``success:false`` with a gRPC code name and a message. Raising :class:`RpcError` with those two
values keeps the services free of HTTP and lets the controller worker reuse the message text
(``Connection not found``, ``Websocket is not connected`` ...) verbatim in its replies.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RpcError", "Status"]


class Status(StrEnum):
    """gRPC status code names, as the gateway's ``status`` field spells them."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class RpcError(Exception):
    """A service call failed with ``status``; ``message`` is safe to show to the caller."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"
