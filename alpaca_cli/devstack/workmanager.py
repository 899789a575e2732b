"""WorkManager stand-in: hosts workers that consume pub/sub topics and publish their replies.

Rules from ``spec/virtufin-platform.md`` ("WorkManager, through the gateway"):

* CreateWorker validates the MIME type (an engine must exist for it), the code source (``content``
  non-empty, or an http(s) URL), the topics and the tags (at most 50, keys up to 128 characters,
  values up to 1024); the new worker is **stopped**. Create is not idempotent.
* Start and Stop are idempotent, Delete needs no Stop, an unknown id is NOT_FOUND.
* Workers on the same input topic compete: each command reaches exactly one of them (one broker
  consumer group per topic). A stopped worker consumes nothing.
* A worker's reply goes to the command's ``replytopic`` extension, else the default reply topic,
  carrying the command's ``correlationid`` (none in, none out).
* Lifecycle events on ``workmanager.lifecycle``, in one of the documented families.
* ``ListWorkers`` takes tag ``filters`` (AND-matched); CreateWorker takes ``config``
  (``map<string,string>``), stamped on every input CloudEvent the worker receives.

Knobs for the newer platform ("Newer platform behaviour"), off by default:

* ``drop_commands``: the first N messages on each input topic are acked and dropped without a
  reply, as a replica with no matching worker does (counted per topic, across workers).
* ``start_on_create``: a new worker is already RUNNING when create answers (newest spec).
* ``lifecycle_names``: ``classic`` and ``reference`` send
  ``com.virtufin.workmanager.lifecycle.<registered|starting|online|stopping|stopped|failed>``
  with ``{worker_id, mime_type, topics, status}`` (the WorkManager page; the C# reference names
  only the WSM's events); ``spec`` sends ``...lifecycle.worker.<created|started|stopped|error>``
  with ``{worker_id, replica_id, topic}`` (``topic``: the first input topic; ``error_message``
  added on ``worker.error``) and nothing for starting/stopping.

Only ``application/x-dotnet-dll`` has an engine, and the only .NET worker this process can run is
the built-in port of the WebSocketManagerController (:mod:`alpaca_cli.devstack.controller`); any
other .NET package fails to start with an engine error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import re
import secrets
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from alpaca_cli.devstack.broker import Broker, BrokerSubscription, CloudEvent, SubscriptionClosed
from alpaca_cli.devstack.controller import (
    EMBEDDED_URL,
    REPLY_TOPIC,
    WebSocketManagerController,
    is_controller_package,
)
from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.schema import check_tags
from alpaca_cli.devstack.wsm import LifecycleNames, WebSocketManager, timestamp

__all__ = [
    "DOTNET_MIME",
    "LIFECYCLE_TOPIC",
    "CodeSource",
    "WorkManager",
    "Worker",
    "WorkerStatus",
]

logger = logging.getLogger(__name__)

DOTNET_MIME = "application/x-dotnet-dll"
LIFECYCLE_TOPIC = "workmanager.lifecycle"
LIFECYCLE_TYPE = "com.virtufin.workmanager.lifecycle."
REPLY_TYPE = "com.virtufin.workmanager.worker.reply"
DOWNLOAD_TIMEOUT = 30.0

_CONFIG_KEY = re.compile(r"[a-z0-9]{1,20}")
"""CloudEvents 1.0 attribute names: lowercase ASCII letters and digits (20 at most advised)."""
_CONTEXT_ATTRIBUTES: Final = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}
    | {"data", "data_base64", "topic", "pubsubname"}
)

_SPEC_EVENT_NAMES: Final = {
    "registered": "worker.created",
    "online": "worker.started",
    "stopped": "worker.stopped",
    "failed": "worker.error",
}


class WorkerStatus(StrEnum):
    """Worker states as the gateway names them (stopped = 1, running = 2 on the wire)."""

    STOPPED = "STOPPED"
    RUNNING = "RUNNING"


@dataclass(frozen=True, slots=True)
class CodeSource:
    """Where a worker's package comes from: inline ``content`` or a ``url``."""

    content: bytes = b""
    url: str = ""


@dataclass(slots=True)
class Worker:
    """One hosted worker and its consumer tasks while running."""

    id: str
    mime_type: str
    code: CodeSource
    topics: list[str]
    tags: dict[str, str]
    group: str = ""
    config: dict[str, str] = field(default_factory=dict)
    language: str = "dotnet"
    status: WorkerStatus = WorkerStatus.STOPPED
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    subscriptions: list[BrokerSubscription] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Protobuf-JSON form (lowerCamelCase, enum names, defaults left out)."""
        out: dict[str, Any] = {"id": self.id, "mimeType": self.mime_type}
        if self.language:
            out["language"] = self.language
        if self.topics:
            out["topics"] = list(self.topics)
        out["createdAt"] = timestamp(self.created_at)
        out["status"] = self.status.value
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _validate_config(config: dict[str, str]) -> None:
    """Config entries become CloudEvent extension attributes, so their names must be valid ones.

    The platform's docs do not say what it refuses; the stand-in holds clients to the
    CloudEvents naming rule, which any platform that stamps them must live with.
    """
    for key in config:
        if not _CONFIG_KEY.fullmatch(key) or key in _CONTEXT_ATTRIBUTES:
            raise RpcError(
                Status.INVALID_ARGUMENT,
                f"Config key {key!r} is not a usable CloudEvent extension attribute name"
                " (lowercase letters and digits, at most 20, not a context attribute)",
            )


def _validate_code(code: CodeSource) -> None:
    if code.url:
        if code.url.lower() == EMBEDDED_URL:
            return
        parts = urlsplit(code.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RpcError(
                Status.INVALID_ARGUMENT,
                f"Code source URL must be http or https: {code.url!r}",
            )
        return
    if not code.content:
        raise RpcError(
            Status.INVALID_ARGUMENT, "Code source is required: non-empty content or a url"
        )


class WorkManager:
    """The workers of one WorkManager, consuming from and replying through ``broker``.

    **Parameters**

    * ``broker`` - the bus workers consume from and reply to.
    * ``wsm`` - the WebSocketManager the built-in controller drives.
    * ``pubsub`` - pub/sub component name of the input topics and replies.
    * ``reply_topic`` - default reply topic when a command has no ``replytopic`` extension.
    * ``drop_commands`` - ack and drop the first N messages on each input topic, no reply.
    * ``start_on_create`` - :meth:`create` leaves a new worker RUNNING (newest spec).
    * ``lifecycle_names`` - which documented family of event types to emit.
    """

    def __init__(
        self,
        broker: Broker,
        wsm: WebSocketManager,
        *,
        pubsub: str = "pubsub",
        reply_topic: str = REPLY_TOPIC,
        drop_commands: int = 0,
        start_on_create: bool = False,
        lifecycle_names: LifecycleNames = "classic",
        replica_id: str | None = None,
    ) -> None:
        self._broker = broker
        self._wsm = wsm
        self._pubsub = pubsub
        self.reply_topic = reply_topic
        self._workers: dict[str, Worker] = {}
        self._lock = asyncio.Lock()
        self.drop_commands = drop_commands
        self._dropped: dict[str, int] = {}
        """Messages dropped so far per input topic (``drop_commands``)."""
        self.start_on_create = start_on_create
        self._spec_names = lifecycle_names == "spec"
        self.replica_id = replica_id or f"workmanager-{secrets.token_hex(4)}"

    def create_worker(
        self,
        *,
        code: CodeSource,
        mime_type: str,
        topics: list[str],
        tags: dict[str, str] | None = None,
        group: str = "",
        config: dict[str, str] | None = None,
    ) -> Worker:
        """Register a new, stopped worker (:meth:`create` is the gateway's CreateWorker).

        Raises:
            RpcError: INVALID_ARGUMENT for a bad code source, topics, tags or config keys;
                NOT_FOUND when no engine handles ``mime_type``.
        """
        if not mime_type:
            raise RpcError(Status.INVALID_ARGUMENT, "mime_type is required")
        if mime_type.lower() != DOTNET_MIME:
            raise RpcError(Status.NOT_FOUND, f"Engine not found for MIME type '{mime_type}'")
        _validate_code(code)
        clean = [t.strip() for t in topics]
        if not clean or any(not t or " " in t for t in clean):
            raise RpcError(
                Status.INVALID_ARGUMENT, "At least one topic is required (non-empty, no spaces)"
            )
        tags = dict(tags or {})
        check_tags(tags)
        config = dict(config or {})
        _validate_config(config)
        worker = Worker(
            id=str(uuid.uuid4()),
            mime_type=mime_type,
            code=code,
            topics=list(dict.fromkeys(clean)),
            tags=tags,
            group=group,
            config=config,
        )
        self._workers[worker.id] = worker
        self._lifecycle("registered", worker)
        return worker

    async def create(
        self,
        *,
        code: CodeSource,
        mime_type: str,
        topics: list[str],
        tags: dict[str, str] | None = None,
        group: str = "",
        config: dict[str, str] | None = None,
    ) -> Worker:
        """CreateWorker: :meth:`create_worker`, then start it with ``start_on_create``.

        A start that fails (an engine error) leaves the worker created and stopped, and the
        create still answers with its id: the failure shows in the lifecycle events and again
        on the ``StartWorker`` a client always sends.

        Raises:
            RpcError: as :meth:`create_worker`.
        """
        worker = self.create_worker(
            code=code, mime_type=mime_type, topics=topics, tags=tags, group=group, config=config
        )
        if self.start_on_create:
            with contextlib.suppress(RpcError):
                await self.start_worker(worker.id)
        return worker

    def list_workers(self, filters: list[tuple[str, str]] | None = None) -> list[Worker]:
        """Every worker, oldest first; with ``filters`` only those carrying every (key, value).

        Raises:
            RpcError: INVALID_ARGUMENT for a filter with an empty key.
        """
        wanted = list(filters or [])
        if any(not key for key, _ in wanted):
            raise RpcError(Status.INVALID_ARGUMENT, "Tag filter keys must not be empty")
        return [
            w
            for w in self._workers.values()
            if all(key in w.tags and w.tags[key] == value for key, value in wanted)
        ]

    def get(self, worker_id: str) -> Worker:
        """The worker ``worker_id``.

        Raises:
            RpcError: NOT_FOUND.
        """
        worker = self._workers.get(worker_id)
        if worker is None:
            raise RpcError(Status.NOT_FOUND, f"Worker {worker_id!r} not found")
        return worker

    async def start_worker(self, worker_id: str) -> None:
        """Start consuming the worker's topics; a running worker stays as it is.

        Raises:
            RpcError: NOT_FOUND; FAILED_PRECONDITION (engine error) for a package this process
                cannot run; UNAVAILABLE when a code URL cannot be downloaded.
        """
        async with self._lock:  # a concurrent Start/Stop/Delete waits for this one
            worker = self.get(worker_id)
            if worker.status is WorkerStatus.RUNNING:
                return
            self._lifecycle("starting", worker)
            try:
                await self._check_runnable(worker)
            except RpcError as exc:
                self._lifecycle("failed", worker, error=exc.message)
                raise
            self._run(worker)

    def _run(self, worker: Worker) -> None:
        controller = WebSocketManagerController(self._wsm)
        for topic in worker.topics:
            # One group per input topic (or legacy ``group``): workers on it compete for commands.
            group = f"workmanager:{worker.group or topic}"
            sub = self._broker.subscribe(topic, group=group, pubsub=self._pubsub)
            worker.subscriptions.append(sub)
            worker.tasks.append(
                asyncio.create_task(
                    self._consume(worker, topic, sub, controller),
                    name=f"worker-{worker.id}-{topic}",
                )
            )
        worker.status = WorkerStatus.RUNNING
        self._lifecycle("online", worker)

    async def stop_worker(self, worker_id: str) -> None:
        """Stop consuming; a stopped worker stays as it is.

        Raises:
            RpcError: NOT_FOUND.
        """
        async with self._lock:
            await self._stop(self.get(worker_id))

    async def _stop(self, worker: Worker) -> None:
        if worker.status is WorkerStatus.STOPPED:
            return
        self._lifecycle("stopping", worker)
        await self._halt(worker)
        self._lifecycle("stopped", worker)

    async def delete_worker(self, worker_id: str) -> None:
        """Stop (if running) and forget the worker.

        Raises:
            RpcError: NOT_FOUND.
        """
        async with self._lock:
            worker = self.get(worker_id)
            await self._stop(worker)
            self._workers.pop(worker_id, None)

    async def close(self) -> None:
        """Stop every worker (platform shutdown); the records stay."""
        for worker in list(self._workers.values()):
            await self._halt(worker)

    # -- internals ---------------------------------------------------------------------------

    async def _halt(self, worker: Worker) -> None:
        worker.status = WorkerStatus.STOPPED
        for sub in worker.subscriptions:
            sub.close()
        tasks, worker.tasks, worker.subscriptions = worker.tasks, [], []
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for task in tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _check_runnable(self, worker: Worker) -> None:
        code = worker.code
        if code.url.lower() == EMBEDDED_URL:
            return
        package = code.content if code.content else await _download(code.url)
        try:
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile as exc:
            raise RpcError(
                Status.FAILED_PRECONDITION,
                "Engine error: the package is not a zip archive of a .NET worker",
            ) from exc
        if not is_controller_package(names):
            raise RpcError(
                Status.FAILED_PRECONDITION,
                "Engine error: no .NET runtime in the embedded platform; it runs only the "
                "built-in WebSocketManagerController",
            )

    async def _consume(
        self,
        worker: Worker,
        topic: str,
        sub: BrokerSubscription,
        controller: WebSocketManagerController,
    ) -> None:
        """Handle the topic's commands one at a time, so a client's commands keep their order."""
        while True:
            try:
                delivery = await sub.get()
            except SubscriptionClosed:
                return
            if self._drop(topic):
                sub.ack(delivery)  # acked: the broker never redelivers it
                continue
            event = self._stamp(worker, delivery.event)
            try:
                reply = await self._handle(worker, controller, event)
                self._reply(worker, event, reply)
            except asyncio.CancelledError:
                sub.retry(delivery)
                raise
            except Exception:  # never let one command kill the worker
                logger.exception("workmanager: worker %s failed on %s", worker.id, event.id)
            sub.ack(delivery)
            await asyncio.sleep(0)  # let the other workers of this topic take their share

    def _drop(self, topic: str) -> bool:
        """True for the first ``drop_commands`` messages on ``topic`` (never their payload logged:
        a ``send_raw`` command carries the Alpaca auth frame)."""
        done = self._dropped.get(topic, 0)
        if done >= self.drop_commands:
            return False
        self._dropped[topic] = done + 1
        logger.info(
            "workmanager: dropped message %d/%d on %s (no reply, as a replica without a worker)",
            done + 1,
            self.drop_commands,
            topic,
        )
        return True

    @staticmethod
    def _stamp(worker: Worker, event: CloudEvent) -> CloudEvent:
        """The input event as the worker sees it: ``config`` entries added as extensions.

        The event's own attributes win over a config entry of the same name, so a config can
        never redirect a reply (``replytopic``) or break correlation (``correlationid``).
        """
        if not worker.config:
            return event
        return dataclasses.replace(event, extensions={**worker.config, **event.extensions})

    async def _handle(
        self, worker: Worker, controller: WebSocketManagerController, event: CloudEvent
    ) -> dict[str, Any]:
        """Run one input event through the worker and return its reply (a seam for tests)."""
        return await controller.handle(event.data)

    def _reply(self, worker: Worker, command: CloudEvent, reply: dict[str, Any]) -> None:
        ext = command.extensions
        topic = ext.get("replytopic")
        if not isinstance(topic, str) or not topic:
            topic = self.reply_topic
        extensions: dict[str, Any] = {"time": timestamp()}
        correlation = ext.get("correlationid")
        if correlation is not None and correlation != "":
            extensions["correlationid"] = correlation
        self._broker.publish(
            topic,
            CloudEvent(
                id=str(uuid.uuid4()),
                source=f"workmanager/worker/{worker.id}",
                type=REPLY_TYPE,
                topic=topic,
                pubsubname=command.pubsubname,
                data=orjson.dumps(reply),
                extensions=extensions,
            ),
        )

    def _lifecycle(self, kind: str, worker: Worker, *, error: str | None = None) -> None:
        """Publish one lifecycle event; ``kind`` is the classic name (see the module docstring)."""
        data: dict[str, Any]
        if self._spec_names:
            spec_kind = _SPEC_EVENT_NAMES.get(kind)
            if spec_kind is None:
                return
            kind = spec_kind
            data = {
                "worker_id": worker.id,
                "replica_id": self.replica_id,
                "topic": worker.topics[0] if worker.topics else "",
            }
        else:
            data = {
                "worker_id": worker.id,
                "mime_type": worker.mime_type,
                "topics": worker.topics,
                "status": worker.status.value,
            }
        if error is not None:
            data["error_message"] = error
        logger.info("workmanager: %s %s", kind, worker.id)
        self._broker.publish(
            LIFECYCLE_TOPIC,
            CloudEvent(
                id=str(uuid.uuid4()),
                source="workmanager",
                type=LIFECYCLE_TYPE + kind,
                topic=LIFECYCLE_TOPIC,
                pubsubname=self._pubsub,
                data=orjson.dumps(data),
                extensions={"time": timestamp()},
            ),
        )


async def _download(url: str) -> bytes:
    """Fetch a package by URL, as the WorkManager does at start."""
    import aiohttp

    try:
        timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise RpcError(
                    Status.UNAVAILABLE,
                    f"Failed to download code from {url}: HTTP {response.status}",
                )
            return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RpcError(
            Status.UNAVAILABLE, f"Failed to download code from {url}: {type(exc).__name__}"
        ) from exc
