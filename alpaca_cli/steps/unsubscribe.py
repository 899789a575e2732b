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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.connect import require_connection
    from alpaca_cli.steps.subscribe import change_subscription, check_symbols

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

    def settled(confirmed: Mapping[str, tuple[str, ...]]) -> bool:
        return all(not set(gone) & set(confirmed.get(ch, ())) for ch, gone in removed.items())

    remaining = change_subscription(
        rt,
        connection.id,
        encode_subscribe(removed, unsubscribe=True),
        f"Unsubscribing connection {connection.id}: "
        + "; ".join(f"{ch}: {', '.join(s)}" for ch, s in removed.items()),
        settled,
        what="unsubscribe",
        timeout_hint="Is the connection authenticated and still open (`alpaca-md list`)?",
    )
    if remaining is None:
        return UnsubscribeResult(connection.id, removed, verified=False)
    with rt.store.transaction() as current:
        current.subscriptions = remaining
    rt.progress(
        "Remaining: "
        + ("; ".join(f"{ch}: {','.join(s)}" for ch, s in remaining.items()) or "nothing")
    )
    return UnsubscribeResult(connection.id, removed, verified=True, remaining=remaining)
