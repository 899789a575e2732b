"""What ``teardown`` and an empty ``list`` print: ids on stdout, "nothing" on stderr."""

from __future__ import annotations

from tests.support import Cli
from tests.support_pubsub import CONTROLLER_URL, ok


def test_teardown_prints_each_removed_id_on_stdout(feed_cli: Cli) -> None:
    worker_id = ok(feed_cli("deploy", "--url", CONTROLLER_URL)).stdout.strip()
    connection_id = ok(feed_cli("connect")).stdout.strip()
    result = ok(feed_cli("teardown"))
    assert result.stdout.splitlines() == [connection_id, worker_id]
    again = ok(feed_cli("teardown"))
    assert again.stdout == ""


def test_an_empty_list_says_so_on_stderr(feed_cli: Cli) -> None:
    result = ok(feed_cli("list"))
    assert result.stdout == ""
    assert "No connections." in result.stderr and "No workers." in result.stderr
