"""``alpaca-md unsubscribe``: the inverse of the additive ``subscribe``.

Alpaca's ``unsubscribe`` subtracts symbols from a channel and answers, like every change, with
the whole current set; that confirmed remaining set is what this step reports and records in
the state file. Without symbols it removes everything the state file records as subscribed (on
the ``--channel`` given, or on every recorded channel): "stop what I started" needs no
retyping of symbols.

Data for the removed symbols may still arrive briefly (the spec says so); the confirmation is
what counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alpaca_cli.alpaca.messages import Message
    from alpaca_cli.runtime import Runtime

__all__ = ["UnsubscribeResult", "unsubscribe_symbols"]


@dataclass(frozen=True, slots=True)
class UnsubscribeResult:
    """What was removed and, when the topic could be seen, what Alpaca still has."""

    connection_id: str
    removed: dict[str, list[str]]
    """channel -> symbols asked to be removed."""
    verified: bool
    remaining: dict[str, list[str]] = field(default_factory=dict)
    """Alpaca's whole confirmed set after the change (channel -> symbols), non-empty only."""


def unsubscribe_symbols(
    rt: Runtime, symbols: Sequence[str], *, channels: Sequence[str] | None = None
) -> UnsubscribeResult:
    """Unsubscribe the recorded connection from ``symbols`` on ``channels``.

    Args:
        symbols: what to remove; empty = every symbol the state file records on ``channels``.
        channels: the channels to remove them from; ``None`` = ``rt.config.channels`` when
            symbols are given, every recorded channel when they are not.

    Raises:
        UsageError: bad symbols, nothing to remove, or no connection recorded (nothing sent).
        CommandRefused: Alpaca answered an error, or the controller refused ``send_raw``.
        ReplyTimeout: no confirmation on the topic in time.
        SidecarUnreachable: from the pub/sub client.
    """
    from alpaca_cli.alpaca.codec import encode_subscribe
    from alpaca_cli.alpaca.messages import Error, Subscription
    from alpaca_cli.errors import CommandRefused, ReplyTimeout, UsageError
    from alpaca_cli.steps.auth import _Matcher, listen
    from alpaca_cli.steps.connect import require_connection
    from alpaca_cli.steps.subscribe import check_symbols

    connection = require_connection(rt)
    state = rt.store.read()
    recorded = dict(state.subscriptions) if state is not None else {}
    if symbols:
        wanted = check_symbols(symbols)
        chosen = list(channels) if channels is not None else list(rt.config.channels)
        removed = dict.fromkeys(chosen, wanted)
    else:
        chosen = list(channels) if channels is not None else list(recorded)
        removed = {ch: list(recorded.get(ch, [])) for ch in chosen if recorded.get(ch)}
        if not removed:
            raise UsageError(
                "Nothing to unsubscribe from: the state file records no subscription"
                + (f" on {', '.join(chosen)}" if chosen else "")
                + "; nothing was sent.",
                hint="Name the symbols: alpaca-md unsubscribe --channel trades BTC/USD.",
            )
    stream = listen(rt, connection.id)
    controller = rt.controller()
    rt.progress(
        f"Unsubscribing connection {connection.id}: "
        + "; ".join(f"{ch}: {', '.join(s)}" for ch, s in removed.items())
    )
    for message in encode_subscribe(removed, unsubscribe=True):
        controller.send_raw(connection.id, message)
    if stream is None:
        rt.progress(
            "Sent. The connection does not publish, so Alpaca's confirmation cannot be seen: "
            "run `alpaca-md publish` first to verify it."
        )
        return UnsubscribeResult(connection.id, removed, verified=False)

    match = _Matcher(connection.id, (Subscription, Error))

    def answer(msg: Message) -> bool:
        if not match(msg):
            return False
        if isinstance(msg, Error):
            return True
        assert isinstance(msg, Subscription)
        confirmed = msg.channels()
        return all(not set(gone) & set(confirmed.get(ch, ())) for ch, gone in removed.items())

    found = stream.wait_for(answer, rt.config.timeout, on_item=match.see, interrupt=rt.stop)
    if found is None:
        raise ReplyTimeout(
            f"no subscription confirmation from Alpaca on topic {stream.topic!r} within "
            f"{rt.config.timeout:g} s.",
            hint="Is the connection authenticated and still open (`alpaca-md list`)?",
        )
    if isinstance(found, Error):
        raise CommandRefused(
            f"Alpaca refused the unsubscribe: {found.code} {found.msg}.", alpaca_code=found.code
        )
    assert isinstance(found, Subscription)
    remaining = {ch: list(syms) for ch, syms in found.channels().items() if syms}
    with rt.store.transaction() as current:
        current.subscriptions = remaining
    rt.progress(
        "Remaining: "
        + ("; ".join(f"{ch}: {','.join(s)}" for ch, s in remaining.items()) or "nothing")
    )
    return UnsubscribeResult(connection.id, removed, verified=True, remaining=remaining)
