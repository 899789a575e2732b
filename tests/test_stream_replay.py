"""``TopicStream(replay_waited=True)``: what the ``auth``/``subscribe`` waits consumed reaches
the stream's next reader (``run``'s loop), over the devstack sidecar."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from alpaca_cli.alpaca.messages import Message, Subscription, Success
from alpaca_cli.devstack.broker import CloudEvent
from alpaca_cli.platform.pubsub import PubsubClient
from alpaca_cli.stream import StreamItem, TopicStream
from tests.support_pubsub import Sidecar

pytestmark = pytest.mark.timeout(30)

WELCOME = b'[{"T":"success","msg":"connected"}]'
AUTHENTICATED = b'[{"T":"success","msg":"authenticated"}]'
TRADE = b'[{"T":"t","S":"BTC/USD","p":100,"s":1,"t":"2024-01-01T00:00:00Z","i":1,"tks":"B"}]'
SUBSCRIBED = b'[{"T":"subscription","trades":["BTC/USD"],"quotes":[],"orderbooks":[]}]'
_ids = itertools.count()


def publish(sidecar: Sidecar, topic: str, *frames: bytes) -> None:
    for frame in frames:
        event = CloudEvent(id=f"e{next(_ids)}", source="wsm", type="frame", topic=topic, data=frame)
        sidecar.broker.publish_threadsafe(topic, event)


def is_authenticated(msg: Message) -> bool:
    return isinstance(msg, Success) and msg.msg == "authenticated"


def is_control(msg: Message) -> bool:
    return isinstance(msg, Success | Subscription)


def first_kind(item: StreamItem | None) -> str:
    assert item is not None
    msg = item.messages[0]
    return f"{msg.T} {msg.msg}" if isinstance(msg, Success) else msg.T


@pytest.fixture
def client(sidecar: Sidecar) -> Iterator[PubsubClient]:
    with PubsubClient(sidecar.settings) as ours:
        yield ours


def test_items_the_waits_consumed_come_out_again_in_order(
    sidecar: Sidecar, client: PubsubClient
) -> None:
    with TopicStream(client, "replay.a", replay_waited=True) as stream:
        decoded = 0
        process = stream.process

        def counting(*args: Any, **kwargs: Any) -> StreamItem:
            nonlocal decoded
            decoded += 1
            return process(*args, **kwargs)

        stream.process = counting  # type: ignore[method-assign]
        publish(sidecar, "replay.a", WELCOME, AUTHENTICATED, TRADE, SUBSCRIBED)
        assert stream.wait_for(is_authenticated, 10) is not None
        # The second wait tests only new items: the replayed welcome cannot answer it.
        answer = stream.wait_for(is_control, 10)
        assert isinstance(answer, Subscription)
        assert stream.pending()
        seen = [first_kind(stream.next(5)) for _ in range(4)]
        assert seen == ["success connected", "success authenticated", "t", "subscription"]
        assert not stream.pending()
        publish(sidecar, "replay.a", TRADE)
        assert first_kind(stream.next(5)) == "t"  # then the subscription's own items
        # Each event was decoded (and its books applied) once, when it was first read.
        assert decoded == 5


def test_without_replay_what_a_wait_consumed_is_gone(
    sidecar: Sidecar, client: PubsubClient
) -> None:
    with TopicStream(client, "replay.b") as stream:
        publish(sidecar, "replay.b", WELCOME, AUTHENTICATED)
        assert stream.wait_for(is_authenticated, 10) is not None
        assert not stream.pending()
        assert stream.next(0.2) is None
