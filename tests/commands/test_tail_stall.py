"""``tail --stall-limit``: a notice on stderr when nothing arrives, and when it flows again."""

from __future__ import annotations

import io

from alpaca_cli.live.stallwatch import StallWatch
from tests.support import Cli


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_silence_is_reported_once_and_its_end_too() -> None:
    clock, notes, out = Clock(), [], io.StringIO()
    watch = StallWatch(out, 5.0, notes.append, clock=clock)
    watch.write("line\n")
    clock.now = 4.9
    watch.flush()
    assert notes == []
    clock.now = 5.5
    watch.flush()
    clock.now = 9.0
    watch.flush()  # still the same silence: said once
    assert len(notes) == 1 and notes[0].startswith("no message for 5 s (--stall-limit)")
    watch.write("again\n")
    assert notes[1] == "messages again after 9.0 s of silence"
    assert out.getvalue() == "line\nagain\n" and watch.stalls == 1


def test_tail_warns_on_stderr_when_the_topic_is_silent(feed_cli: Cli) -> None:
    result = feed_cli(
        "tail", "--topic", "nobody-publishes-here", "--duration", "1.5", "--stall-limit", "0.5"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "Warning: no message for 0.5 s (--stall-limit)" in result.stderr


def test_book_lines_say_plainly_when_no_snapshot_was_seen() -> None:
    from alpaca_cli.alpaca.book import Books
    from alpaca_cli.alpaca.messages import Level, OrderBookUpdate
    from alpaca_cli.platform.frames import FrameMeta
    from alpaca_cli.steps.tail import make_formatter
    from alpaca_cli.stream import StreamItem

    books = Books()
    fmt = make_formatter(books, json_lines=False)
    ns = 1_700_000_000_000_000_000

    def line(msg: OrderBookUpdate) -> str:
        books.apply(msg)
        return fmt(StreamItem(ns, FrameMeta(), b"", [msg]))[0].decode()

    delta = OrderBookUpdate("BTC/USD", ns, [Level(100.0, 1.0)], [])
    assert (
        line(delta)
        .rstrip("\n")
        .endswith("\tno snapshot since tail started: levels from updates only")
    )
    assert line(
        OrderBookUpdate("BTC/USD", ns, [Level(100.0, 1.0)], [Level(101.0, 1.0)], reset=True)
    ).endswith("\treset\n")
    assert line(delta).endswith("levels\n")
    books.invalidate()
    assert line(delta).rstrip("\n").endswith("\tstale: no snapshot since the reconnect")
