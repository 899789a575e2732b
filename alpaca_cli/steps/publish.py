"""``alpaca-md publish``: have the WebSocketManager publish the connection's frames to a topic.

The step (:func:`start_publishing`) sends the controller's ``publish`` for the connection the
state names, with the settings' topic (``--topic``), and records the topic: ``auth`` and
``subscribe`` then listen there for Alpaca's answers, and ``tail`` reads it by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alpaca_cli.runtime import Runtime


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The connection now publishing, and where to."""

    connection_id: str
    topic: str


def start_publishing(rt: Runtime, *, topic: str | None = None) -> PublishResult:
    """Send ``publish`` for the recorded connection and record the topic.

    Args:
        topic: the topic; default the resolved configuration's (``--topic`` / settings).

    Raises:
        UsageError: no connection recorded.
        SidecarUnreachable, CommandRefused, ReplyTimeout: from the controller RPC
            (e.g. ``Websocket is not connected`` when Alpaca already closed it).
    """
    from alpaca_cli.steps.connect import require_connection

    connection = require_connection(rt)
    target = topic or rt.config.topic
    controller = rt.controller()
    rt.progress(f"Publishing connection {connection.id} to topic {target}")
    controller.publish(connection.id, target)
    _tag_publishing(rt, connection.id, target)
    with rt.store.transaction() as state:
        state.publish_topic = target
    return PublishResult(connection.id, target)


def _tag_publishing(rt: Runtime, connection_id: str, topic: str) -> None:
    """virtufin-tui's ``publishing`` tag = the topic, so its World pane shows the stream.

    Metadata only: a platform without SetTag (or a gateway we cannot reach from here) costs a
    ``-v`` line, never the publish itself.
    """
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.steps.tags import TUI_PUBLISHING

    try:
        rt.gateway().set_connection_tag(connection_id, TUI_PUBLISHING, topic)
    except AlpacaMdError as exc:
        rt.log(f"could not tag connection {connection_id} as publishing to {topic} ({exc})")
