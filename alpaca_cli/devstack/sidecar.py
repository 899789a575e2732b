"""A Dapr-compatible sidecar over the in-process broker: the pub/sub surface the SDK uses.

``daprd`` cannot run here, so this stand-in answers what the ``dapr`` Python SDK and Dapr's
JavaScript SDK call (``spec/dapr-pubsub.md``), with daprd's answers and error codes:

* HTTP ``GET /v1.0/healthz`` and ``/v1.0/healthz/outbound`` -> 204 (every ``DaprClient()`` polls
  the latter first), ``GET /v1.0/metadata`` (the JavaScript SDK's start-up probe),
  ``POST /v1.0/publish/{pubsub}/{topic}`` and ``POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}``.
  An empty or unknown pub/sub name or an empty topic is a 404 with daprd's JSON error body.
* gRPC ``dapr.proto.runtime.v1.Dapr/PublishEvent``, ``BulkPublishEventAlpha1``,
  ``GetMetadata`` (app id, runtime version, the pub/sub components, the open streaming
  subscriptions) and the bidirectional ``SubscribeTopicEventsAlpha1``. Every other method
  answers UNIMPLEMENTED.

Acknowledgements follow daprd (``postman/streaming/streaming.go``): ``SUCCESS`` settles,
``DROP`` dead-letters (when the subscription named a dead-letter topic) or discards, and
``RETRY`` (or an unknown status) is an error: redelivered while a resiliency retry policy allows
(``resiliency_retries``), then dead-lettered if the subscription named a topic, else dropped and
logged. Without a policy (the default, as daprd without a resiliency spec) there is no retry.
An event past its ``expiration`` (``ttlInSeconds``) is not delivered.

Several streaming subscriptions on one pub/sub topic (``streams_per_topic``):

* ``"copy"`` (default): every stream is a consumer of its own and receives every message
  published on its topic after it opened. Convenient, but no real sidecar does this.
* ``"split"``: the streams of this sidecar form one consumer group (its app id), as on Dapr
  1.16+: each message goes to only one of them.
* ``"single"``: a second concurrent stream on the same pub/sub and topic is refused with the
  runtime's own error (``streamer already subscribed to pubsub "p" topic "t"``, gRPC UNKNOWN),
  as on Dapr 1.14/1.15.

The last two exist so that a client holding two subscriptions on one topic fails here as it
would beside a real sidecar, instead of working only against this stand-in.

Flow control: a stream pulls from its broker subscription only as fast as gRPC accepts writes
(HTTP/2 flow control), and holds at most ``max_in_flight`` unacknowledged events. A slow
consumer therefore makes the broker buffer grow (up to ``Broker.max_pending`` per stream),
after which the broker's drop-oldest policy applies and counts the losses.

Example::

    sidecar = DaprSidecar(broker, app_id="tail")
    await sidecar.start()
    env = {"DAPR_HTTP_PORT": str(sidecar.http_port), "DAPR_GRPC_PORT": str(sidecar.grpc_port)}
    ...
    await sidecar.stop()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import grpc
import orjson
from aiohttp import web
from dapr.proto.runtime.v1 import appcallback_pb2, dapr_pb2_grpc, metadata_pb2, pubsub_pb2
from google.protobuf import empty_pb2, struct_pb2

from alpaca_cli.devstack.broker import (
    DEFAULT_MAX_IN_FLIGHT,
    Broker,
    BrokerSubscription,
    CloudEvent,
    Delivery,
    SubscriptionClosed,
)
from alpaca_cli.devstack.cloudevents import (
    CloudEventError,
    data_survives,
    event_from_publish,
    has_expired,
    media_type,
)

__all__ = [
    "API_TOKEN_HEADER",
    "RUNTIME_VERSION",
    "STREAM_MODES",
    "BulkEntry",
    "DaprSidecar",
    "StreamMode",
]

logger = logging.getLogger(__name__)

API_TOKEN_HEADER = "dapr-api-token"
"""gRPC metadata key / HTTP header carrying ``DAPR_API_TOKEN``."""

StreamMode: TypeAlias = Literal["copy", "split", "single"]
"""How a sidecar serves several streaming subscriptions on one pub/sub topic (module doc)."""
STREAM_MODES: tuple[StreamMode, ...] = get_args(StreamMode)

RUNTIME_VERSION = "1.16.0"
"""The daprd version this stand-in answers as (``GetMetadata``); 1.16 is the first whose
streaming subscriptions may share a topic (``streams_per_topic="split"``)."""

PUBSUB_COMPONENT_TYPE = "pubsub.in-memory"
"""What ``GetMetadata`` calls the pub/sub components: the broker is in-memory, like daprd's."""

_TOKEN_MISMATCH = "authentication error: api token mismatch"
_SUCCESS = appcallback_pb2.TopicEventResponse.SUCCESS
_RETRY = appcallback_pb2.TopicEventResponse.RETRY
_DROP = appcallback_pb2.TopicEventResponse.DROP
_EMPTY = empty_pb2.Empty()

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # generic only in the stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor


class PubsubRequestError(Exception):
    """A request the real sidecar refuses; carries the gRPC code and the runtime's message."""

    def __init__(self, code: grpc.StatusCode, message: str, http_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_code = http_code
        """daprd's ``errorCode`` in an HTTP error body (``ERR_PUBSUB_NOT_FOUND`` ...)."""


class DaprSidecar:
    """The sidecar: an aio gRPC server and an aiohttp server in the broker's event loop.

    **Parameters**

    * ``broker`` - the bus events are published to and streamed from.
    * ``host`` - interface to bind (loopback by default).
    * ``http_port`` / ``grpc_port`` - 0 picks a free port; read the bound ones after start.
    * ``app_id`` - ``source`` of the CloudEvents this sidecar makes.
    * ``api_token`` - when set, every gRPC call and every HTTP call except the health checks must
      carry it (``dapr-api-token``), else UNAUTHENTICATED / HTTP 401.
    * ``pubsub_names`` - the pub/sub components that exist; others fail with INVALID_ARGUMENT
      ``pubsub X is not found``.
    * ``max_in_flight`` - unacknowledged events one stream may hold before it waits for acks.
    * ``streams_per_topic`` - ``"copy"``, ``"split"`` or ``"single"`` (module doc): whether
      concurrent streams on one topic each get every message, compete for them as one app id,
      or are refused after the first.
    * ``resiliency_retries`` - daprd's behaviour with a resiliency retry policy of that many
      retries: a ``RETRY`` is redelivered up to this many times, then handled as without a
      policy (dead-letter topic if the subscription set one, else dropped and logged). 0, the
      default, is daprd without a resiliency policy.
    * ``clock`` - returns the current UTC time; the wall clock by default.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        app_id: str = "devstack",
        api_token: str | None = None,
        pubsub_names: Iterable[str] = ("pubsub",),
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        streams_per_topic: StreamMode = "copy",
        resiliency_retries: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if resiliency_retries < 0:
            raise ValueError("resiliency_retries must be zero or positive")
        if streams_per_topic not in STREAM_MODES:
            raise ValueError(
                f"streams_per_topic must be one of {', '.join(STREAM_MODES)}, "
                f"not {streams_per_topic!r}"
            )
        self.broker = broker
        self.streams_per_topic: StreamMode = streams_per_topic
        self.host = host
        self.app_id = app_id
        self._api_token = api_token
        self.pubsub_names = frozenset(pubsub_names)
        self.max_in_flight = max_in_flight
        self.resiliency_retries = resiliency_retries
        """Redeliveries after a ``RETRY`` before the event is dead-lettered or dropped."""
        self.clock: Callable[[], datetime] = clock or _utcnow
        """The wall clock (``time`` and ``expiration``); tests pass their own."""
        self._want_http_port = http_port
        self._want_grpc_port = grpc_port
        self._http_port: int | None = None
        self._grpc_port: int | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._streams: dict[BrokerSubscription, tuple[str, str]] = {}
        """Open streams -> their (pubsub, topic)."""
        self.retries_exhausted = 0
        """Events a ``RETRY`` could not redeliver: dead-lettered or dropped (diagnostics)."""
        self.expired = 0
        """Events not delivered because their ``expiration`` had passed."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def http_port(self) -> int:
        """The bound HTTP port (still readable after :meth:`stop`, to restart on it)."""
        if self._http_port is None:
            raise RuntimeError("DaprSidecar is not started")
        return self._http_port

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port (still readable after :meth:`stop`)."""
        if self._grpc_port is None:
            raise RuntimeError("DaprSidecar is not started")
        return self._grpc_port

    @property
    def stream_count(self) -> int:
        """Open streaming subscriptions (tests and ``dev up`` diagnostics)."""
        return len(self._streams)

    async def start(self) -> None:
        """Bind and serve both ports.

        Raises:
            OSError: a port is taken (``errno.EADDRINUSE`` for both servers).
        """
        interceptors = [] if self._api_token is None else [_TokenInterceptor(self._api_token)]
        # gRPC sets SO_REUSEPORT by default: a second stack on the same port would then bind
        # "successfully" and split the connections. Turn it off so a taken port fails loudly.
        server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
        dapr_pb2_grpc.add_DaprServicer_to_server(_DaprServicer(self), server)  # type: ignore[no-untyped-call]
        address = f"{self.host}:{self._want_grpc_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
            raise OSError(errno.EADDRINUSE, f"cannot bind gRPC address {address}") from exc
        await server.start()
        self._grpc, self._grpc_port = server, port
        try:
            self._http, self._http_port = await self._start_http()
        except BaseException:
            await self.stop()
            raise

    async def _start_http(self) -> tuple[web.AppRunner, int]:
        app = web.Application(middlewares=[self._http_token_middleware])
        app.router.add_get("/v1.0/healthz", _healthz)
        app.router.add_get("/v1.0/healthz/outbound", _healthz)
        app.router.add_get("/v1.0/metadata", self._http_metadata)
        # Segments may be empty so that a missing name gets daprd's JSON 404, not a bare one.
        app.router.add_post("/v1.0/publish/{pubsub:[^/]*}/{topic:.*}", self._http_publish)
        app.router.add_post(
            "/v1.0-alpha1/publish/bulk/{pubsub:[^/]*}/{topic:.*}", self._http_bulk_publish
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._want_http_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner, _bound_port(runner)

    async def stop(self) -> None:
        """End open streams (the client sees the server close them), then both servers."""
        for sub in list(self._streams):
            sub.close()
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
            self._grpc = None
        if self._http is not None:
            await self._http.cleanup()
            self._http = None

    async def __aenter__(self) -> DaprSidecar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- shared request handling ---------------------------------------------------------------

    def check_pubsub(self, pubsub: str, topic: str | None = None) -> None:
        """Validate names the way the runtime does.

        Raises:
            PubsubRequestError: empty or unknown pub/sub name, or empty topic.
        """
        if not pubsub:
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT, "pubsub name is empty", "ERR_PUBSUB_EMPTY"
            )
        if pubsub not in self.pubsub_names:
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"pubsub {pubsub} is not found",
                "ERR_PUBSUB_NOT_FOUND",
            )
        if topic is not None and not topic:
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"topic is empty in pubsub {pubsub}",
                "ERR_TOPIC_EMPTY",
            )

    def publish(
        self,
        pubsub: str,
        topic: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
        traceparent: str | None = None,
        tracestate: str = "",
    ) -> CloudEvent:
        """Wrap and publish one event, as both transports' publish calls do.

        Raises:
            PubsubRequestError: bad names, or an unusable ``application/cloudevents+json`` body.
        """
        self.check_pubsub(pubsub, topic)
        event = self._make_event(
            pubsub, topic, data, content_type, metadata, traceparent, tracestate
        )
        self.broker.publish(topic, event)
        return event

    def _make_event(
        self,
        pubsub: str,
        topic: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
        traceparent: str | None,
        tracestate: str,
    ) -> CloudEvent:
        try:
            return event_from_publish(
                pubsub=pubsub,
                topic=topic,
                data=data,
                content_type=content_type,
                metadata=metadata,
                app_id=self.app_id,
                traceparent=traceparent,
                tracestate=tracestate,
                now=self.clock(),
            )
        except CloudEventError as exc:
            # daprd: ErrPubsubCloudEventCreation, INVALID_ARGUMENT over gRPC, 500 over HTTP.
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot create cloudevent: {exc}",
                "ERR_PUBSUB_CLOUD_EVENTS_SER",
            ) from exc

    def bulk_publish(
        self,
        pubsub: str,
        topic: str,
        entries: list[BulkEntry],
        metadata: dict[str, str],
        traceparent: str | None = None,
        tracestate: str = "",
    ) -> list[tuple[str, str]]:
        """Publish every entry of a bulk request; return the ``(entry_id, error)`` that failed.

        Request-level metadata applies to every entry, an entry's own metadata on top of it
        (daprd's ``BulkPublishEventAlpha1``). An entry whose CloudEvent cannot be made fails
        alone; the others are published.

        Raises:
            PubsubRequestError: bad names, or missing or repeated entry ids (the whole request
                is refused, as daprd refuses it).
        """
        self.check_pubsub(pubsub, topic)
        seen: set[str] = set()
        for entry in entries:
            if not entry.entry_id or entry.entry_id in seen:
                raise PubsubRequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "entryId is duplicated or not present for entry",
                    "ERR_PUBSUB_EVENTS_SER",
                )
            seen.add(entry.entry_id)
        failed: list[tuple[str, str]] = []
        for entry in entries:
            try:
                event = self._make_event(
                    pubsub,
                    topic,
                    entry.data,
                    entry.content_type,
                    {**metadata, **entry.metadata},
                    traceparent,
                    tracestate,
                )
            except PubsubRequestError as exc:
                failed.append((entry.entry_id, exc.message))
                continue
            self.broker.publish(topic, event)
        return failed

    def metadata(self) -> metadata_pb2.GetMetadataResponse:
        """What ``GetMetadata`` answers: this sidecar, its components and its open streams."""
        return metadata_pb2.GetMetadataResponse(
            id=self.app_id,
            runtime_version=RUNTIME_VERSION,
            registered_components=[
                metadata_pb2.RegisteredComponents(
                    name=name, type=PUBSUB_COMPONENT_TYPE, version="v1"
                )
                for name in sorted(self.pubsub_names)
            ],
            extended_metadata={"daprRuntimeVersion": RUNTIME_VERSION},
            subscriptions=[
                metadata_pb2.PubsubSubscription(
                    pubsub_name=pubsub,
                    topic=topic,
                    dead_letter_topic=sub.dead_letter_topic or "",
                    type=metadata_pb2.PubsubSubscriptionType.STREAMING,
                )
                for sub, (pubsub, topic) in self._streams.items()
            ],
        )

    def _open_stream(self, pubsub: str, topic: str, dead_letter: str) -> BrokerSubscription:
        """A broker subscription for a new stream, by :attr:`streams_per_topic`.

        Raises:
            PubsubRequestError: bad names; or ``"single"`` and a stream on this topic is open
                (the runtime's error, which reaches the client as gRPC UNKNOWN).
        """
        self.check_pubsub(pubsub, topic)
        key = (pubsub, topic)
        mode = self.streams_per_topic
        if mode == "single" and key in self._streams.values():
            # Dapr 1.14/1.15 (pkg/runtime/compstore): the error the gRPC handler returns as is.
            raise PubsubRequestError(
                grpc.StatusCode.UNKNOWN,
                f'streamer already subscribed to pubsub "{pubsub}" topic "{topic}"',
            )
        sub = self.broker.subscribe(
            topic,
            # A real sidecar consumes as its app id's consumer group: its streams compete.
            group=f"dapr-app:{self.app_id}" if mode == "split" else None,
            pubsub=pubsub,
            dead_letter_topic=dead_letter or None,
            max_in_flight=self.max_in_flight,
        )
        self._streams[sub] = key
        return sub

    def _close_stream(self, sub: BrokerSubscription) -> None:
        self._streams.pop(sub, None)
        sub.close()

    # -- HTTP -------------------------------------------------------------------------------------

    @web.middleware
    async def _http_token_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        token = self._api_token
        if (
            token is not None
            and not request.path.startswith("/v1.0/healthz")
            and request.headers.get(API_TOKEN_HEADER) != token
        ):
            return web.Response(status=401, text="invalid api token")
        return await handler(request)

    async def _http_publish(self, request: web.Request) -> web.Response:
        try:
            self.publish(
                request.match_info["pubsub"],
                request.match_info["topic"],
                await request.read(),
                request.headers.get("Content-Type", ""),
                _query_metadata(request),
                request.headers.get("traceparent"),
                request.headers.get("tracestate", ""),
            )
        except PubsubRequestError as exc:
            return _http_refusal(exc)
        return web.Response(status=204)

    async def _http_bulk_publish(self, request: web.Request) -> web.Response:
        pubsub, topic = request.match_info["pubsub"], request.match_info["topic"]
        try:
            self.check_pubsub(pubsub, topic)
            entries = _bulk_entries_from_json(await request.read())
            failed = self.bulk_publish(
                pubsub,
                topic,
                entries,
                _query_metadata(request),
                request.headers.get("traceparent"),
                request.headers.get("tracestate", ""),
            )
        except PubsubRequestError as exc:
            return _http_refusal(exc)
        if not failed:
            return web.Response(status=204)
        body = {
            "failedEntries": [{"entryId": entry_id, "error": error} for entry_id, error in failed],
            "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
        }
        return web.json_response(body, status=500)

    async def _http_metadata(self, request: web.Request) -> web.Response:
        # daprd's HTTP shape (pkg/api/http/metadata.go): camelCase, empty lists left out.
        answer = self.metadata()
        body: dict[str, Any] = {
            "id": answer.id,
            "runtimeVersion": answer.runtime_version,
            "components": [
                {"name": c.name, "type": c.type, "version": c.version}
                for c in answer.registered_components
            ],
            "extended": dict(answer.extended_metadata),
            "actorRuntime": {"runtimeStatus": "DISABLED", "hostReady": False},
        }
        if answer.subscriptions:
            body["subscriptions"] = [
                {
                    "pubsubname": s.pubsub_name,
                    "topic": s.topic,
                    "deadLetterTopic": s.dead_letter_topic,
                    "type": metadata_pb2.PubsubSubscriptionType.Name(s.type),
                }
                for s in answer.subscriptions
            ]
        return web.json_response(body)


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One entry of a bulk publish, the same whether it came over gRPC or HTTP."""

    entry_id: str
    data: bytes
    """The event as bytes (HTTP entries are converted by their content type first)."""
    content_type: str
    metadata: dict[str, str]
    """The entry's own publish metadata, applied over the request's."""


def _bulk_entries_from_json(body: bytes) -> list[BulkEntry]:
    """The entries of an HTTP bulk publish (``[{"entryId", "event", "contentType", ...}]``).

    daprd turns each ``event`` into bytes by its content type: a string for ``text/*`` and
    ``application/xml``, base64 for ``application/octet-stream``, JSON for JSON and
    CloudEvents (``ConvertEventToBytes``).

    Raises:
        PubsubRequestError: the body or an entry cannot be read (HTTP 400).
    """

    def refuse(why: str) -> PubsubRequestError:
        return PubsubRequestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"failed deserializing HTTP body: {why}",
            "ERR_MALFORMED_REQUEST",
        )  # fmt: skip

    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise refuse(str(exc)) from exc
    if not isinstance(doc, list):
        raise refuse("not a JSON array of entries")
    entries: list[BulkEntry] = []
    for item in doc:
        if not isinstance(item, dict):
            raise refuse("an entry is not a JSON object")
        entry_id = item.get("entryId", item.get("entryID", ""))
        content_type = item.get("contentType") or ""
        event = item.get("event")
        metadata = item.get("metadata") or {}
        if not isinstance(entry_id, str) or not isinstance(content_type, str):
            raise refuse("entryId and contentType must be strings")
        if not isinstance(metadata, dict):
            raise refuse("metadata must be an object")
        mt = media_type(content_type)
        if mt == "application/octet-stream":
            if not isinstance(event, str):
                raise refuse("a binary event must be a base64 string")
            try:
                data = base64.b64decode(event, validate=True)
            except binascii.Error as exc:
                raise refuse(f"event is not base64: {exc}") from exc
        elif mt.startswith("text/") or mt == "application/xml":
            if not isinstance(event, str):
                raise refuse(f"a {mt} event must be a string")
            data = event.encode()
        else:
            data = orjson.dumps(event)
        entries.append(
            BulkEntry(entry_id, data, content_type, {str(k): str(v) for k, v in metadata.items()})
        )
    return entries


def _query_metadata(request: web.Request) -> dict[str, str]:
    return {
        key[len("metadata.") :]: value
        for key, value in request.query.items()
        if key.startswith("metadata.")
    }


def _http_refusal(exc: PubsubRequestError) -> web.Response:
    """daprd's HTTP status for a refused publish: names -> 404, envelope -> 500, body -> 400."""
    code = exc.http_code
    if code in ("ERR_PUBSUB_EMPTY", "ERR_PUBSUB_NOT_FOUND", "ERR_TOPIC_EMPTY"):
        return _http_error(404, code, exc.message)
    if code == "ERR_PUBSUB_CLOUD_EVENTS_SER":
        return _http_error(500, code, exc.message)
    return _http_error(400, code or "ERR_MALFORMED_REQUEST", exc.message)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _http_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "message": message}, status=status)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise OSError("HTTP server bound no TCP address")


def _trace_context(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str | None, str]:
    traceparent: str | None = None
    tracestate = ""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent":
            traceparent = str(value)
        elif key == "tracestate":
            tracestate = str(value)
    return traceparent, tracestate


class _DaprServicer(dapr_pb2_grpc.DaprServicer):
    """The Dapr RPCs the SDKs' pub/sub uses; the base class answers UNIMPLEMENTED."""

    def __init__(self, sidecar: DaprSidecar) -> None:
        self._sidecar = sidecar

    async def GetMetadata(
        self,
        request: metadata_pb2.GetMetadataRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> metadata_pb2.GetMetadataResponse:
        return self._sidecar.metadata()

    async def BulkPublishEventAlpha1(
        self, request: pubsub_pb2.BulkPublishRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pubsub_pb2.BulkPublishResponse:
        traceparent, tracestate = _trace_context(context)
        entries = [
            BulkEntry(e.entry_id, e.event, e.content_type, dict(e.metadata))
            for e in request.entries
        ]
        try:
            failed = self._sidecar.bulk_publish(
                request.pubsub_name,
                request.topic,
                entries,
                dict(request.metadata),
                traceparent,
                tracestate,
            )
        except PubsubRequestError as exc:
            await context.abort(exc.code, exc.message)
        return pubsub_pb2.BulkPublishResponse(
            failedEntries=[
                pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=entry_id, error=error)
                for entry_id, error in failed
            ]
        )

    async def PublishEvent(
        self, request: pubsub_pb2.PublishEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        traceparent, tracestate = _trace_context(context)
        try:
            self._sidecar.publish(
                request.pubsub_name,
                request.topic,
                request.data,
                request.data_content_type,
                dict(request.metadata),
                traceparent,
                tracestate,
            )
        except PubsubRequestError as exc:
            await context.abort(exc.code, exc.message)
        return _EMPTY

    async def SubscribeTopicEventsAlpha1(
        self,
        request_iterator: AsyncIterator[pubsub_pb2.SubscribeTopicEventsRequestAlpha1],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        # daprd (pkg/api/grpc/subscribe.go) returns plain errors here, which gRPC sends as
        # UNKNOWN: the Python SDK then retries them as transient, as against the real sidecar.
        if first is None or first.WhichOneof("subscribe_topic_events_request_type") != (
            "initial_request"
        ):
            await context.abort(grpc.StatusCode.UNKNOWN, "initial request is required")
            return
        init = first.initial_request
        if not init.pubsub_name:
            await context.abort(grpc.StatusCode.UNKNOWN, "pubsubName is required")
            return
        if not init.topic:
            await context.abort(grpc.StatusCode.UNKNOWN, "topic is required")
            return
        try:
            sub = self._sidecar._open_stream(init.pubsub_name, init.topic, init.dead_letter_topic)
        except PubsubRequestError as exc:
            await context.abort(exc.code, exc.message)
            return
        stream = _Stream(sub, self._sidecar)
        reader = asyncio.create_task(stream.read_acks(requests))
        try:
            await context.write(
                pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                    initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()
                )
            )
            await stream.write_events(context)
        finally:
            reader.cancel()
            self._sidecar._close_stream(sub)
            (outcome,) = await asyncio.gather(reader, return_exceptions=True)
            if isinstance(outcome, Exception):
                logger.warning("sidecar: ack reader of %s failed: %r", init.topic, outcome)
        if stream.error is not None:
            await context.abort(grpc.StatusCode.UNKNOWN, stream.error)


class _Stream:
    """One streaming subscription: events out, acks in, matched by event id."""

    __slots__ = ("_outstanding", "_sidecar", "_sub", "error")

    def __init__(self, sub: BrokerSubscription, sidecar: DaprSidecar) -> None:
        self._sub = sub
        self._sidecar = sidecar
        self.error: str | None = None
        """Why the client's side broke the protocol; the stream then ends with UNKNOWN."""
        # Ids are the publisher's when it sent a whole CloudEvent, so they may repeat: keep a
        # list per id and settle the oldest first.
        self._outstanding: dict[str, list[Delivery]] = {}

    async def write_events(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Pump deliveries to the client until the subscription closes."""
        sub = self._sub
        sidecar = self._sidecar
        outstanding = self._outstanding
        topic = sub.topic
        try:
            while True:
                delivery: Delivery | None = await sub.get()
                while delivery is not None:
                    event = delivery.event
                    if "expiration" in event.extensions and has_expired(event, sidecar.clock()):
                        # daprd drops an expired event before delivery, with a warning.
                        logger.warning("sidecar: dropping expired event %s on %s", event.id, topic)
                        sidecar.expired += 1
                        sub.ack(delivery)
                    else:
                        pending = outstanding.get(event.id)
                        if pending is None:
                            outstanding[event.id] = [delivery]
                        else:
                            pending.append(delivery)
                        await context.write(_event_message(event, topic))
                    delivery = sub.get_nowait()
        except SubscriptionClosed:
            return

    async def read_acks(
        self, requests: AsyncIterator[pubsub_pb2.SubscribeTopicEventsRequestAlpha1]
    ) -> None:
        """Settle deliveries as acks arrive; when the client half-closes, end the stream."""
        sub = self._sub
        outstanding = self._outstanding
        try:
            async for request in requests:
                if request.HasField("initial_request"):
                    self.error = "duplicate initial request received"
                    return
                if not request.HasField("event_processed"):
                    continue
                processed = request.event_processed
                pending = outstanding.get(processed.id)
                if not pending:
                    logger.debug("sidecar: ack for unknown event id %r ignored", processed.id)
                    continue
                delivery = pending.pop(0)
                if not pending:
                    del outstanding[processed.id]
                status = processed.status.status
                if status == _SUCCESS:
                    sub.ack(delivery)
                elif status == _DROP:
                    sub.drop(delivery)
                else:  # RETRY, and statuses the runtime does not know: an error in daprd
                    self._failed(delivery)
        except (grpc.RpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            logger.debug("sidecar: stream read ended: %s", exc)
        finally:
            sub.close()

    def _failed(self, delivery: Delivery) -> None:
        """A ``RETRY``: redeliver within the retry policy, else dead-letter or drop and log."""
        sub = self._sub
        if delivery.attempt <= self._sidecar.resiliency_retries:
            sub.retry(delivery)
            return
        self._sidecar.retries_exhausted += 1
        event = delivery.event
        if sub.dead_letter_topic is None:
            logger.warning(
                "sidecar: RETRY of event %s on %s/%s with no retry left and no dead-letter "
                "topic: dropped",
                event.id,
                sub.pubsub,
                sub.topic,
            )
        sub.drop(delivery)


def _event_message(event: CloudEvent, topic: str) -> pubsub_pb2.SubscribeTopicEventsResponseAlpha1:
    """The ``event_message`` for one event, as a streaming subscriber of ``topic`` receives it.

    ``topic`` is the subscription's (daprd's ``msg.Topic``); the event's own ``topic``
    attribute, in the extensions, still names where it was published, so a dead-lettered
    event shows both.
    """
    extensions = struct_pb2.Struct()
    if event.extensions:
        try:
            extensions.update(event.extensions)
        except (ValueError, TypeError):
            extensions.update({k: _jsonable(v) for k, v in event.extensions.items()})
    extensions["topic"] = event.topic
    extensions["pubsubname"] = event.pubsubname
    content_type = event.datacontenttype
    return pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
        event_message=appcallback_pb2.TopicEventRequest(
            id=event.id,
            source=event.source,
            type=event.type,
            spec_version=event.specversion,
            data_content_type=content_type,
            data=event.data if data_survives(content_type) else b"",
            topic=topic,
            pubsub_name=event.pubsubname,
            extensions=extensions,
        )
    )


def _jsonable(value: object) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _TokenInterceptor(_ServerInterceptor):
    """Refuse every RPC (implemented or not) without the right ``dapr-api-token``."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        metadata = handler_call_details.invocation_metadata or ()
        for key, value in metadata:
            if key == API_TOKEN_HEADER and value == self._token:
                return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return _denying_handler(handler)


def _denying_handler(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
) -> grpc.RpcMethodHandler[Any, Any]:
    async def deny(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _TOKEN_MISMATCH)

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(deny)
    kwargs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
