"""``alpaca-md subscribe``: ask Alpaca for a channel's symbols through the controller.

The step (:func:`subscribe_symbols`) validates the channel and the symbols before anything is
sent (exit 2), builds the additive subscribe message(s) with the Alpaca codec (at most 100
symbols each) and sends them with the controller's ``send_raw``. When the connection publishes,
it listens on the topic first and waits for Alpaca's ``subscription`` confirmation, records the
confirmed set in the state file, and reports 405 (symbol limit) and 410 (channel not available)
as refusals (exit 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alpaca_cli.alpaca.messages import Message
    from alpaca_cli.runtime import Runtime


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """What was asked for and, when the topic could be seen, what Alpaca confirmed."""

    connection_id: str
    channels: list[str]
    symbols: list[str]
    verified: bool
    confirmed: dict[str, list[str]] = field(default_factory=dict)
    """Alpaca's whole current subscription set (channel -> symbols), non-empty channels only."""


def check_symbols(symbols: Sequence[str]) -> list[str]:
    """Symbols as Alpaca accepts them (``BTC/USD`` upper case, or ``*``), de-duplicated.

    The rule is the one of the configuration (:func:`alpaca_cli.config.is_valid_symbol`):
    symbols that came through the config were checked already, but ``unsubscribe`` takes them
    straight from its arguments.

    Raises:
        UsageError: none given, or one is malformed (nothing is sent).
    """
    from alpaca_cli.config import is_valid_symbol
    from alpaca_cli.errors import UsageError

    result = list(dict.fromkeys(symbols))
    if not result:
        raise UsageError("No symbols to subscribe to.", hint="Give some, e.g. BTC/USD ETH/USD.")
    bad = [s for s in result if not is_valid_symbol(s)]
    if bad:
        raise UsageError(
            f"Not a crypto symbol: {', '.join(repr(s) for s in bad)}; nothing was sent.",
            hint="Write symbols as BASE/QUOTE in upper case, e.g. BTC/USD, or * for all.",
        )
    return result


def subscribe_symbols(rt: Runtime) -> SubscribeResult:
    """Subscribe the recorded connection to each of ``rt.config.channels`` x ``rt.config.symbols``
    (one message names every channel: Alpaca's subscribe takes several at once).

    Raises:
        UsageError: bad symbols or no connection recorded (nothing sent).
        CommandRefused: Alpaca answered 405 (symbol limit), 410 (channel not available),
            401 (not authenticated) or another error; or the controller refused ``send_raw``.
        ReplyTimeout: no reply from the controller, or no confirmation on the topic in time.
        SidecarUnreachable: from the pub/sub client.
    """
    from alpaca_cli.alpaca.codec import encode_subscribe
    from alpaca_cli.steps.connect import require_connection

    config = rt.config
    channels = list(config.channels)
    symbols = check_symbols(config.symbols)
    connection = require_connection(rt)
    wanted = set(symbols)

    def settled(confirmed: Mapping[str, tuple[str, ...]]) -> bool:
        for channel in channels:
            have = set(confirmed.get(channel, ()))
            if not ("*" in have or wanted <= have):
                return False
        return True

    confirmed = change_subscription(
        rt,
        connection.id,
        encode_subscribe(dict.fromkeys(channels, symbols)),
        f"Subscribing connection {connection.id} to {', '.join(channels)}: {', '.join(symbols)}",
        settled,
        what="subscription",
        timeout_hint="Is the connection authenticated (`alpaca-md auth`) and still open "
        "(`alpaca-md list`)?",
        refusal_hints=_HINTS,
    )
    if confirmed is None:
        return SubscribeResult(connection.id, channels, symbols, verified=False)
    with rt.store.transaction() as state:
        state.channel = channels[0]
        state.subscriptions = confirmed
    rt.progress("Confirmed: " + "; ".join(f"{ch}: {','.join(s)}" for ch, s in confirmed.items()))
    return SubscribeResult(connection.id, channels, symbols, verified=True, confirmed=confirmed)


def change_subscription(
    rt: Runtime,
    connection_id: str,
    messages: Iterable[bytes],
    announce: str,
    settled: Callable[[Mapping[str, tuple[str, ...]]], bool],
    *,
    what: str,
    timeout_hint: str,
    refusal_hints: Mapping[int, str] | None = None,
) -> dict[str, list[str]] | None:
    """Send subscribe or unsubscribe ``messages`` with ``send_raw`` and wait for Alpaca's answer.

    The topic is listened to before anything is sent, so the confirmation cannot be missed.
    Alpaca answers every change with its whole current set; the wait ends at the first one of
    ``connection_id`` that ``settled`` accepts (or at an error).

    Returns:
        The confirmed set (channel -> symbols, non-empty channels only), or ``None`` when the
        connection does not publish (the change was sent but cannot be seen).

    Raises:
        CommandRefused: Alpaca answered an error (``refusal_hints`` by code), or the controller
            refused ``send_raw``.
        ReplyTimeout: no confirmation on the topic in time.
    """
    from alpaca_cli.alpaca.messages import Error, Subscription
    from alpaca_cli.errors import CommandRefused, ReplyTimeout
    from alpaca_cli.steps.auth import _Matcher, listen

    stream = listen(rt, connection_id)
    controller = rt.controller()
    rt.progress(announce)
    for message in messages:
        controller.send_raw(connection_id, message)
    if stream is None:
        rt.progress(
            "Sent. The connection does not publish, so Alpaca's confirmation cannot be seen: "
            "run `alpaca-md publish` first to verify it."
        )
        return None

    match = _Matcher(connection_id, (Subscription, Error))

    def answer(msg: Message) -> bool:
        if not match(msg):
            return False
        return isinstance(msg, Error) or (isinstance(msg, Subscription) and settled(msg.channels()))

    timeout = rt.config.timeout
    found = stream.wait_for(answer, timeout, on_item=match.see, interrupt=rt.stop)
    if found is None:
        raise ReplyTimeout(
            f"no subscription confirmation from Alpaca on topic {stream.topic!r} within "
            f"{timeout:g} s.",
            hint=timeout_hint,
        )
    if isinstance(found, Error):
        raise CommandRefused(
            f"Alpaca refused the {what}: {found.code} {found.msg}.",
            alpaca_code=found.code,
            hint=(refusal_hints or {}).get(found.code),
        )
    assert isinstance(found, Subscription)
    return {ch: list(syms) for ch, syms in found.channels().items() if syms}


_HINTS = {
    405: "Your Alpaca plan allows fewer symbols: subscribe to fewer.",
    410: "This endpoint does not serve that channel: pick another --channel.",
    401: "Authenticate first: `alpaca-md auth`.",
    400: "Check the symbols (BASE/QUOTE, upper case).",
}
"""The hint of each Alpaca refusal of a subscription."""
