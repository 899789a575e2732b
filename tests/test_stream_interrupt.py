"""Waiting for Alpaca's answer on the topic ends as soon as the invocation is told to stop."""

from __future__ import annotations

import threading

import pytest

from alpaca_cli.errors import ExitCode, Interrupted
from alpaca_cli.platform.pubsub import PubsubClient
from alpaca_cli.stream import StreamItem, TopicStream
from tests.support_pubsub import Sidecar

pytestmark = pytest.mark.timeout(60)


def test_an_interrupt_ends_wait_for_before_its_timeout(sidecar: Sidecar) -> None:
    interrupt = threading.Event()
    seen: list[StreamItem] = []

    def on_item(item: StreamItem) -> None:
        seen.append(item)
        interrupt.set()  # e.g. Ctrl+C while the answer is still awaited

    with PubsubClient(sidecar.settings) as client, TopicStream(client, "t.interrupt") as stream:
        client.publish("t.interrupt", b'[{"T":"success","msg":"connected"}]', type="frame")
        with pytest.raises(Interrupted) as info:
            # 600 s: a wait that sat out its timeout would blow the test's own timeout.
            stream.wait_for(lambda msg: False, 600, on_item=on_item, interrupt=interrupt)
    assert len(seen) == 1
    assert info.value.exit_code == ExitCode.INTERRUPTED


def test_without_an_interrupt_wait_for_still_finds_the_answer(sidecar: Sidecar) -> None:
    interrupt = threading.Event()
    with PubsubClient(sidecar.settings) as client, TopicStream(client, "t.answer") as stream:
        client.publish("t.answer", b'[{"T":"success","msg":"authenticated"}]', type="frame")
        found = stream.wait_for(lambda msg: True, 30, interrupt=interrupt)
    assert found is not None and found.T == "success"
