"""The in-process broker: delivery to groups, acks, retry, dead letters, buffering, closing."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.devstack.broker import Broker, CloudEvent, Delivery, SubscriptionClosed
from alpaca_cli.devstack.loopthread import LoopThread

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")


def run(test: Callable[[Broker], Awaitable[T]], **kwargs: int | None) -> T:
    async def main() -> T:
        broker = Broker(**kwargs)  # type: ignore[arg-type]
        try:
            return await test(broker)
        finally:
            broker.close()

    return asyncio.run(main())


def event(n: int, topic: str = "t", pubsub: str = "pubsub") -> CloudEvent:
    return CloudEvent(
        id=str(n), source="test", type="t.n", topic=topic, pubsubname=pubsub, data=b"%d" % n
    )


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.event.id for d in deliveries]


def test_each_ungrouped_subscription_gets_every_message_published_after_it_subscribed() -> None:
    async def scenario(broker: Broker) -> None:
        early = broker.subscribe("t")
        broker.publish("t", event(1))
        late = broker.subscribe("t")
        broker.publish("t", event(2))
        broker.publish("t", event(3))
        assert ids([await early.get() for _ in range(3)]) == ["1", "2", "3"]
        assert ids([await late.get() for _ in range(2)]) == ["2", "3"]
        assert late.get_nowait() is None

    run(scenario)


def test_a_topic_without_subscribers_keeps_nothing() -> None:
    async def scenario(broker: Broker) -> None:
        broker.publish("t", event(1))
        sub = broker.subscribe("t")
        assert sub.get_nowait() is None
        assert broker.published == 1

    run(scenario)


def test_members_of_one_group_compete_for_messages() -> None:
    async def scenario(broker: Broker) -> None:
        a = broker.subscribe("t", group="workers")
        b = broker.subscribe("t", group="workers")
        solo = broker.subscribe("t")
        for n in range(10):
            broker.publish("t", event(n))
        got_a: list[Delivery] = []
        got_b: list[Delivery] = []
        # Alternate takers: each message goes to whichever member asks first.
        for n in range(10):
            (got_a if n % 2 else got_b).append(await (a if n % 2 else b).get())
        assert a.get_nowait() is None
        assert b.get_nowait() is None
        assert sorted(ids(got_a) + ids(got_b), key=int) == [str(n) for n in range(10)]
        assert got_a and got_b
        assert ids([await solo.get() for _ in range(10)]) == [str(n) for n in range(10)]

    run(scenario)


def test_an_idle_member_is_woken_by_a_publish() -> None:
    async def scenario(broker: Broker) -> None:
        a = broker.subscribe("t", group="g")
        b = broker.subscribe("t", group="g")
        waiting = [asyncio.create_task(a.get()), asyncio.create_task(b.get())]
        await asyncio.sleep(0)
        broker.publish("t", event(1))
        broker.publish("t", event(2))
        done = await asyncio.gather(*waiting)
        assert sorted(ids(done)) == ["1", "2"]

    run(scenario)


def test_retry_redelivers_with_the_next_attempt_number() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        broker.publish("t", event(1))
        first = await sub.get()
        assert first.attempt == 1
        sub.retry(first)
        again = await sub.get()
        assert again.event is first.event
        assert again.attempt == 2
        sub.ack(again)
        assert sub.in_flight == 0
        assert sub.get_nowait() is None

    run(scenario)


def test_drop_republishes_to_the_dead_letter_topic() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t", dead_letter_topic="t.dead")
        dead = broker.subscribe("t.dead")
        broker.publish("t", event(7))
        sub.drop(await sub.get())
        lost = await dead.get()
        # daprd republishes the original event: its topic attribute still names the origin.
        assert (lost.event.id, lost.event.topic, lost.event.data) == ("7", "t", b"7")
        assert sub.get_nowait() is None

    run(scenario)


def test_drop_without_dead_letter_topic_discards() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        broker.publish("t", event(1))
        sub.drop(await sub.get())
        assert sub.get_nowait() is None
        assert sub.in_flight == 0

    run(scenario)


def test_settling_twice_is_ignored() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        broker.publish("t", event(1))
        d = await sub.get()
        sub.ack(d)
        sub.retry(d)
        assert sub.get_nowait() is None

    run(scenario)


def test_a_full_buffer_drops_the_oldest_and_counts_it() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        for n in range(5):
            broker.publish("t", event(n))
        assert sub.dropped == 2
        assert broker.dropped == 2
        assert ids([await sub.get() for _ in range(3)]) == ["2", "3", "4"]

    run(scenario, max_pending=3)


def test_unacked_deliveries_hold_back_a_member_until_acked() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        for n in range(3):
            broker.publish("t", event(n))
        first = await sub.get()
        second = await sub.get()
        assert sub.get_nowait() is None  # two in flight: the cap
        blocked = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        assert not blocked.done()
        sub.ack(first)
        third = await blocked
        assert ids([second, third]) == ["1", "2"]
        assert sub.dropped == 0

    run(scenario, max_in_flight=2)


def test_close_ends_a_waiting_get() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        sub.close()
        with pytest.raises(SubscriptionClosed):
            await waiting
        with pytest.raises(SubscriptionClosed):
            sub.get_nowait()
        assert broker.subscriber_count("t") == 0

    run(scenario)


def test_unsettled_deliveries_of_a_leaving_member_go_to_the_rest_of_its_group() -> None:
    async def scenario(broker: Broker) -> None:
        leaving = broker.subscribe("t", group="g")
        staying = broker.subscribe("t", group="g")
        broker.publish("t", event(1))
        taken = await leaving.get()
        leaving.close()
        again = await staying.get()
        assert again.event is taken.event
        assert again.attempt == 2

    run(scenario)


def test_a_cancelled_get_does_not_lose_the_message_it_was_woken_for() -> None:
    async def scenario(broker: Broker) -> None:
        a = broker.subscribe("t", group="g")
        b = broker.subscribe("t", group="g")
        task_a = asyncio.create_task(a.get())
        await asyncio.sleep(0)
        task_b = asyncio.create_task(b.get())
        await asyncio.sleep(0)
        broker.publish("t", event(1))  # wakes a, which is cancelled before it runs
        task_a.cancel()
        got = await task_b
        assert got.event.id == "1"
        assert task_a.cancelled()

    run(scenario)


def test_pubsub_components_are_separate_namespaces() -> None:
    async def scenario(broker: Broker) -> None:
        main = broker.subscribe("t")
        other = broker.subscribe("t", pubsub="other")
        broker.publish("t", event(1, pubsub="other"))
        assert ids([await other.get()]) == ["1"]
        assert main.get_nowait() is None

    run(scenario)


def test_publish_threadsafe_delivers_from_another_thread() -> None:
    with LoopThread() as lt:
        broker = Broker(loop=lt.loop)
        sub = lt.call(broker.subscribe, "t")
        publishers = [
            threading.Thread(target=broker.publish_threadsafe, args=("t", event(n)))
            for n in range(20)
        ]
        for thread in publishers:
            thread.start()
        for thread in publishers:
            thread.join()

        async def take_all() -> list[Delivery]:
            return [await sub.get() for _ in range(20)]

        got = lt.run(take_all())
    assert sorted(ids(got), key=int) == [str(n) for n in range(20)]


def test_publish_threadsafe_needs_to_know_the_loop() -> None:
    with pytest.raises(RuntimeError, match="no event loop"):
        Broker().publish_threadsafe("t", event(1))


def test_a_closed_broker_refuses_subscriptions_and_ignores_publishes() -> None:
    async def scenario(broker: Broker) -> None:
        sub = broker.subscribe("t")
        broker.close()
        assert sub.closed
        broker.publish("t", event(1))
        with pytest.raises(RuntimeError, match="closed"):
            broker.subscribe("t")

    run(scenario)


@settings(max_examples=40, deadline=None)
@given(
    members=st.integers(min_value=1, max_value=4),
    outcomes=st.lists(st.sampled_from(["ack", "retry"]), min_size=1, max_size=60),
)
def test_a_group_acks_every_message_exactly_once_whatever_retries_happen(
    members: int, outcomes: list[str]
) -> None:
    """Messages are neither lost nor duplicated across competing members and retries."""

    async def scenario(broker: Broker) -> Counter[str]:
        subs = [broker.subscribe("t", group="g") for _ in range(members)]
        for n in range(len(outcomes)):
            broker.publish("t", event(n))
        acked: Counter[str] = Counter()
        script = iter(outcomes)
        turn = 0
        while sum(acked.values()) < len(outcomes):
            sub = subs[turn % members]
            turn += 1
            d = sub.get_nowait()
            if d is None:
                continue
            if next(script, "ack") == "ack":
                sub.ack(d)
                acked[d.event.id] += 1
            else:
                sub.retry(d)
        assert all(s.get_nowait() is None for s in subs)
        return acked

    acked = run(scenario)
    assert acked == Counter(str(n) for n in range(len(outcomes)))


def test_a_broker_made_on_its_loop_accepts_threadsafe_publishes_at_once() -> None:
    with LoopThread() as lt:
        broker = lt.call(Broker)
        broker.publish_threadsafe("t", event(1))  # no subscriber yet: discarded, but accepted
        sub = lt.call(broker.subscribe, "t")
        broker.publish_threadsafe("t", event(2))
        got = lt.run(sub.get())
    assert got.event.id == "2"
