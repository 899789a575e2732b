"""``alpaca-md auth``: send Alpaca's auth message upstream through the controller.

The step (:func:`authenticate`) reads ``ALPACA_API_KEY`` / ``ALPACA_API_SECRET`` (environment or
``.env``; never a flag) and refuses before anything is sent when one is missing. It sends the
auth message with the controller's ``send_raw``. When the connection publishes (the state names
a topic) it first subscribes to that topic, so Alpaca's answer cannot be missed, and reports
``authenticated`` or the Alpaca error: 402 (bad keys), 406 (connection limit), 409 (no
subscription for this feed) are credential refusals (exit 4).

Alpaca closes a connection that has not authenticated within 10 s of connecting with
``404 auth timeout``; the platform then reconnects it in the background, and each new socket
times out the same way. ``auth`` sent after that deadline meets a socket that is gone (the
controller answers "Websocket is not connected") or Alpaca's 404 itself: both are reported as
the auth timeout they are, with what to do (exit 5, like Alpaca's other refusals that are not
about the credentials).

The auth message holds the secret: it goes only into ``send_raw`` (base64), which is never
logged; no result or state field carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from datetime import datetime

    from alpaca_cli.alpaca.messages import Message
    from alpaca_cli.config import Config
    from alpaca_cli.errors import CommandRefused
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.stream import StreamItem, TopicStream


ALPACA_AUTH_DEADLINE: Final = 10.0
"""Seconds Alpaca gives a new connection to authenticate before ``404 auth timeout``."""
AUTH_TIMEOUT_HINT: Final = (
    "Authenticate right after connecting: `alpaca-md teardown`, then `alpaca-md connect && "
    "alpaca-md publish && alpaca-md auth` at once, or `alpaca-md run`, which does it for you."
)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What ``auth`` did and, when it could see the topic, what Alpaca answered."""

    connection_id: str
    verified: bool
    """True when Alpaca's ``authenticated`` was seen on the publish topic."""
    message: str
    topic: str | None = None


def missing_keys(config: Config) -> list[str]:
    """The Alpaca key variables that are not set: ``auth`` and ``run`` refuse to start without
    both, each before it sends or creates anything."""
    return [
        name
        for name, value in (
            ("ALPACA_API_KEY", config.alpaca_key),
            ("ALPACA_API_SECRET", config.alpaca_secret),
        )
        if not value
    ]


def listen(rt: Runtime, connection_id: str) -> TopicStream | None:
    """The stream on the recorded publish topic (opened now, before anything is sent), or
    ``None`` when the connection does not publish.

    It is the invocation's one stream on the topic (:meth:`~alpaca_cli.runtime.Runtime.stream`):
    inside ``run`` that is the stream the live view reads. Only frames of ``connection_id`` count
    (another connection may publish to the same topic).
    """
    state = rt.store.read()
    topic = state.publish_topic if state is not None else None
    if not topic:
        return None
    return rt.stream(topic)


class _Matcher:
    """Predicate: a message of the ``wanted`` types that came from ``connection_id``.

    ``see`` is called with each stream item before its messages are tested, so frames of other
    connections on the same topic (their ``websocketId`` differs) are ignored.
    """

    def __init__(self, connection_id: str, wanted: type | tuple[type, ...]) -> None:
        self.connection_id = connection_id
        self.wanted = wanted
        self.item: StreamItem | None = None

    def see(self, item: StreamItem) -> None:
        self.item = item

    def __call__(self, msg: Message) -> bool:
        item = self.item
        ws = item.meta.websocket_id if item is not None else None
        return isinstance(msg, self.wanted) and (ws is None or ws == self.connection_id)


def authenticate(rt: Runtime) -> AuthResult:
    """Send the auth message for the recorded connection; verify it when publishing.

    Raises:
        UsageError: a key is missing (nothing is sent) or no connection is recorded.
        AlpacaAuthRefused: Alpaca answered 402, 406 or 409.
        CommandRefused: another Alpaca error, or the controller refused ``send_raw``.
        ReplyTimeout: no reply from the controller, or no answer on the topic in time.
        SidecarUnreachable: from the pub/sub client.
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.connect import require_connection

    missing = missing_keys(rt.config)
    if missing:
        raise UsageError(
            f"{' and '.join(missing)} not set; nothing was sent.",
            hint="Export them (or put them in ./.env or the --env-file); secrets are never "
            "taken from command-line flags.",
        )
    connection = require_connection(rt)
    stream = listen(rt, connection.id)
    return _send_auth(rt, connection.id, stream, connected_at=connection.created_at)


def _auth_timed_out(connection_id: str, age: float | None) -> CommandRefused:
    from alpaca_cli.errors import CommandRefused

    since = f" (it connected {age:.0f} s ago)" if age is not None else ""
    return CommandRefused(
        f"Alpaca closed connection {connection_id} for not authenticating within "
        f"{ALPACA_AUTH_DEADLINE:g} s (404 auth timeout){since}; the platform keeps "
        "reconnecting it, and each new socket times out the same way.",
        alpaca_code=404,
        hint=AUTH_TIMEOUT_HINT,
    )


def _send_auth(
    rt: Runtime,
    connection_id: str,
    stream: TopicStream | None,
    *,
    connected_at: datetime | None = None,
) -> AuthResult:
    from alpaca_cli.alpaca.codec import encode_auth
    from alpaca_cli.alpaca.errors import AUTH_REFUSALS
    from alpaca_cli.alpaca.messages import Error, Success
    from alpaca_cli.errors import AlpacaAuthRefused, CommandRefused, ReplyTimeout
    from alpaca_cli.state import utcnow

    config = rt.config
    assert config.alpaca_key is not None and config.alpaca_secret is not None
    controller = rt.controller()
    rt.progress(f"Sending auth for connection {connection_id}")
    payload = encode_auth(
        config.alpaca_key.get_secret_value(), config.alpaca_secret.get_secret_value()
    )
    try:
        controller.send_raw(connection_id, payload)
    except CommandRefused as exc:
        # Past Alpaca's deadline the socket is gone (or between two reconnects): that is the
        # auth timeout, not a refusal of this command.
        age = (utcnow() - connected_at).total_seconds() if connected_at is not None else None
        if "not connected" in exc.message.lower() and (age is None or age > ALPACA_AUTH_DEADLINE):
            raise _auth_timed_out(connection_id, age) from exc
        raise
    finally:
        del payload
    if stream is None:
        rt.progress(
            "Sent. The connection does not publish, so Alpaca's answer cannot be seen: "
            "run `alpaca-md publish` first to verify it."
        )
        return AuthResult(connection_id, verified=False, message="sent")

    match = _Matcher(connection_id, (Success, Error))

    def answer(msg: Message) -> bool:
        if not match(msg):
            return False
        return isinstance(msg, Error) or (isinstance(msg, Success) and msg.msg == "authenticated")

    found = stream.wait_for(answer, config.timeout, on_item=match.see, interrupt=rt.stop)
    if found is None:
        raise ReplyTimeout(
            f"no answer from Alpaca to auth on topic {stream.topic!r} within {config.timeout:g} s.",
            hint="Alpaca may have closed the connection (10 s auth deadline): "
            "run `alpaca-md connect` again, then publish and auth at once.",
        )
    if isinstance(found, Error):
        text = f"Alpaca refused auth: {found.code} {found.msg}"
        if found.code in AUTH_REFUSALS:  # "these credentials cannot be used here": exit 4
            raise AlpacaAuthRefused(text + ".", code=found.code, hint=_auth_hint(found.code))
        if found.code == 404:
            raise _auth_timed_out(connection_id, None)
        if found.code == 403:  # already authenticated: the session is usable
            rt.progress("Alpaca says this connection is already authenticated.")
        else:
            raise CommandRefused(text + ".", alpaca_code=found.code)
    with rt.store.transaction() as state:
        state.authenticated_at = utcnow()
    rt.progress("Authenticated.")
    return AuthResult(connection_id, verified=True, message="authenticated", topic=stream.topic)


def _auth_hint(code: int) -> str:
    if code == 402:
        return "Check ALPACA_API_KEY / ALPACA_API_SECRET (paper and live keys differ)."
    if code == 406:
        return (
            "Another connection already uses these keys: close it (`alpaca-md teardown`) "
            "or wait about 90 s for Alpaca to free the slot."
        )
    return "Your Alpaca account has no subscription for this feed."
