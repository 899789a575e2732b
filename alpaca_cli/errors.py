"""The one exception tree of alpaca-md, and the exit code each branch maps to.

Library code raises these; only :mod:`alpaca_cli.main` turns them into a one-line message on
stderr and a process exit code. Foreign errors (httpx, grpc, dapr, OSError) are translated at the
client boundary with ``raise ... from exc`` so that no command ever sees a raw one.

::

    AlpacaMdError (1: unexpected)
    ├── UsageError (2: bad usage or invalid input)
    │   ├── SettingsError        a settings file or value is invalid
    │   └── StateError           the state file is corrupt, of an unknown version, or locked
    ├── PlatformUnreachable (3)
    │   ├── GatewayUnreachable   the gateway's HTTP endpoint did not answer
    │   └── SidecarUnreachable   the Dapr sidecar did not answer
    ├── CredentialsRefused (4)
    │   ├── GatewayUnauthorized  HTTP 401 from the gateway (wrong VIRTUFIN_API_KEY)
    │   └── AlpacaAuthRefused    Alpaca answered 402 / 406 / 409 to auth
    ├── CommandRefused (5)       the platform answered success:false
    ├── ReplyTimeout (6)         no reply in time
    ├── SmokeCheckFailed (7)     ``run --min-frames`` saw too few frames
    └── Interrupted (130)        Ctrl+C / SIGTERM

Messages never contain secrets: callers pass already-redacted text.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ExitCode(IntEnum):
    """Documented process exit codes (README, ``--help``)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    UNREACHABLE = 3
    CREDENTIALS = 4
    REFUSED = 5
    TIMEOUT = 6
    SMOKE = 7
    INTERRUPTED = 130


class AlpacaMdError(Exception):
    """Root of every error alpaca-md raises on purpose.

    ``hint`` is an optional second sentence telling the user what to do.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(AlpacaMdError):
    """Bad usage or invalid input: an option, an argument, a settings value."""

    exit_code = ExitCode.USAGE


class SettingsError(UsageError):
    """A settings file or a configured value is invalid; the message names file, field and fix."""


class StateError(UsageError):
    """The state file is corrupt, has an unknown version, or is locked; it is left untouched."""


class PlatformUnreachable(AlpacaMdError):
    """A platform endpoint did not answer. ``url`` is the endpoint tried."""

    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url


class GatewayUnreachable(PlatformUnreachable):
    """The gateway's HTTP endpoint refused the connection, timed out, or answered 5xx."""


class SidecarUnreachable(PlatformUnreachable):
    """The Dapr sidecar's health endpoint or gRPC port did not answer."""


class CredentialsRefused(AlpacaMdError):
    """Credentials were refused somewhere."""

    exit_code = ExitCode.CREDENTIALS


class GatewayUnauthorized(CredentialsRefused):
    """The gateway answered HTTP 401: VIRTUFIN_API_KEY is missing or wrong."""


class AlpacaAuthRefused(CredentialsRefused):
    """Alpaca refused the session: ``code`` is its error code (402, 406, 409...)."""

    def __init__(self, message: str, *, code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class CommandRefused(AlpacaMdError):
    """The platform answered ``success: false``; ``status`` is the gRPC status name if any."""

    exit_code = ExitCode.REFUSED

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        alpaca_code: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.alpaca_code = alpaca_code


class ReplyTimeout(AlpacaMdError):
    """No reply arrived within the timeout."""

    exit_code = ExitCode.TIMEOUT


class SmokeCheckFailed(AlpacaMdError):
    """``run --min-frames N``: some subscribed symbol got fewer than N data messages."""

    exit_code = ExitCode.SMOKE


class Interrupted(AlpacaMdError):
    """The user (Ctrl+C) or the system (SIGTERM) stopped the command."""

    exit_code = ExitCode.INTERRUPTED


__all__ = [
    "AlpacaAuthRefused",
    "AlpacaMdError",
    "CommandRefused",
    "CredentialsRefused",
    "ExitCode",
    "GatewayUnauthorized",
    "GatewayUnreachable",
    "Interrupted",
    "PlatformUnreachable",
    "ReplyTimeout",
    "SettingsError",
    "SidecarUnreachable",
    "SmokeCheckFailed",
    "StateError",
    "UsageError",
]


GRPC_STATUS_EXIT: Final[dict[str, ExitCode]] = {
    "OK": ExitCode.INTERNAL,  # never an error: a client that raises it has a bug
    "CANCELLED": ExitCode.UNREACHABLE,
    "UNKNOWN": ExitCode.REFUSED,
    "INVALID_ARGUMENT": ExitCode.USAGE,
    "DEADLINE_EXCEEDED": ExitCode.UNREACHABLE,
    "NOT_FOUND": ExitCode.REFUSED,
    "ALREADY_EXISTS": ExitCode.REFUSED,
    "PERMISSION_DENIED": ExitCode.CREDENTIALS,
    "RESOURCE_EXHAUSTED": ExitCode.REFUSED,
    "FAILED_PRECONDITION": ExitCode.REFUSED,
    "ABORTED": ExitCode.UNREACHABLE,
    "OUT_OF_RANGE": ExitCode.USAGE,
    "UNIMPLEMENTED": ExitCode.USAGE,  # not a gateway / a sidecar without that API: fix the address
    "INTERNAL": ExitCode.REFUSED,
    "UNAVAILABLE": ExitCode.UNREACHABLE,
    "DATA_LOSS": ExitCode.REFUSED,
    "UNAUTHENTICATED": ExitCode.CREDENTIALS,
}
"""The exit code of every gRPC status a bus (Dapr sidecar or gateway) can answer with.

Why a table: an unmapped status used to exit 1, the "please report a bug" code, for what is a
failure in the world. A transport-level failure (the peer went away, timed out, or cancelled)
is "unreachable" (3); a status the server chose is "refused" (5) unless it names bad input (2)
or credentials (4). ``tests/cli/test_errors.py`` checks that every ``grpc.StatusCode`` is here.
"""

_REFUSED_BY_EXIT: Final[dict[ExitCode, type[AlpacaMdError]]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.CREDENTIALS: CredentialsRefused,
    ExitCode.REFUSED: CommandRefused,
    ExitCode.INTERNAL: AlpacaMdError,
}


def grpc_status_error(status: str, message: str, *, hint: str | None = None) -> AlpacaMdError:
    """Our error for a gRPC ``status`` name that is not "unreachable" (the caller builds those:
    they need the address). Unknown names (a newer gRPC) count as refusals."""
    code = GRPC_STATUS_EXIT.get(status, ExitCode.REFUSED)
    cls = _REFUSED_BY_EXIT.get(code, CommandRefused)
    return cls(message, hint=hint)
