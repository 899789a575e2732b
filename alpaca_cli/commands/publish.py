"""``alpaca-md publish``: have the WebSocketManager publish the connection's frames to a topic.

The step (:func:`start_publishing`) sends the controller's ``publish`` for the connection the
state names, with the settings' topic (``--topic``), and records the topic: ``auth`` and
``subscribe`` then listen there for Alpaca's answers, and ``tail`` reads it by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from alpaca_cli.commands._common import (
    CommandTopicOption,
    EnvFileOption,
    JsonOption,
    PubsubOption,
    ReplyTopicOption,
    SettingsOption,
    StateOption,
    TimeoutOption,
    TopicOption,
    VerboseOption,
    open_runtime,
    reported_errors,
    run_step,
)

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
    from alpaca_cli.commands.connect import require_connection
    from alpaca_cli.platform.controller import ControllerClient

    connection = require_connection(rt)
    target = topic or rt.config.topic
    controller = rt.enter_context(ControllerClient.from_runtime(rt))
    rt.progress(f"Publishing connection {connection.id} to topic {target}")
    controller.publish(connection.id, target)
    with rt.store.transaction() as state:
        state.publish_topic = target
    return PublishResult(connection.id, target)


def command(
    ctx: typer.Context,
    topic: TopicOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
    state: StateOption = None,
    settings: SettingsOption = None,
    env_file: EnvFileOption = None,
    pubsub: PubsubOption = None,
    command_topic: CommandTopicOption = None,
    reply_topic: ReplyTopicOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Publish every frame of the recorded connection to a topic (the controller's `publish`).

    Prints the topic and records it in the state file; `alpaca-md tail` reads it.

    Example: alpaca-md publish --topic alpaca-ticks
    """
    import sys

    with reported_errors():
        rt = open_runtime(
            ctx,
            json_output=json_output,
            verbose=verbose,
            state=state,
            settings=settings,
            env_file=env_file,
            pubsub=pubsub,
            command_topic=command_topic,
            reply_topic=reply_topic,
            timeout=timeout,
            topic=topic,
        )
        run_step(rt, start_publishing, lambda r: sys.stdout.write(f"{r.topic}\n"))
