"""A Dapr-compatible sidecar over the in-process broker: the pub/sub surface the SDK uses.

``daprd`` cannot run here, so this stand-in answers exactly what the ``dapr`` Python SDK calls
(``spec/dapr-pubsub.md``):

* HTTP ``GET /v1.0/healthz`` and ``/v1.0/healthz/outbound`` -> 204 (every ``DaprClient()`` polls
  the latter first), and ``POST /v1.0/publish/{pubsub}/{topic}`` like the real HTTP API.
* gRPC ``dapr.proto.runtime.v1.Dapr/PublishEvent`` and the bidirectional
  ``SubscribeTopicEventsAlpha1``. Every other method answers UNIMPLEMENTED.

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
import errno
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import grpc
from aiohttp import web
from dapr.proto.runtime.v1 import appcallback_pb2, dapr_pb2_grpc, pubsub_pb2
from google.protobuf import empty_pb2, struct_pb2

from alpaca_cli.devstack.broker import (
    DEFAULT_MAX_IN_FLIGHT,
    Broker,
    BrokerSubscription,
    CloudEvent,
    Delivery,
    SubscriptionClosed,
)
from alpaca_cli.devstack.cloudevents import CloudEventError, data_survives, event_from_publish

__all__ = ["API_TOKEN_HEADER", "STREAM_MODES", "DaprSidecar", "StreamMode"]

logger = logging.getLogger(__name__)

API_TOKEN_HEADER = "dapr-api-token"
"""gRPC metadata key / HTTP header carrying ``DAPR_API_TOKEN``."""

StreamMode: TypeAlias = Literal["copy", "split", "single"]
"""How a sidecar serves several streaming subscriptions on one pub/sub topic (module doc)."""
STREAM_MODES: tuple[StreamMode, ...] = get_args(StreamMode)

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

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    ) -> None:
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
        self._want_http_port = http_port
        self._want_grpc_port = grpc_port
        self._http_port: int | None = None
        self._grpc_port: int | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._streams: dict[BrokerSubscription, tuple[str, str]] = {}
        """Open streams -> their (pubsub, topic)."""

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
        app.router.add_post("/v1.0/publish/{pubsub}/{topic:.+}", self._http_publish)
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
            raise PubsubRequestError(grpc.StatusCode.INVALID_ARGUMENT, "pubsub name is empty")
        if pubsub not in self.pubsub_names:
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"pubsub {pubsub} is not found"
            )
        if topic is not None and not topic:
            raise PubsubRequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"topic is empty in pubsub {pubsub}"
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
        try:
            event = event_from_publish(
                pubsub=pubsub,
                topic=topic,
                data=data,
                content_type=content_type,
                metadata=metadata,
                app_id=self.app_id,
                traceparent=traceparent,
                tracestate=tracestate,
            )
        except CloudEventError as exc:
            raise PubsubRequestError(
                grpc.StatusCode.INTERNAL, f"cannot create cloudevent: {exc}"
            ) from exc
        self.broker.publish(topic, event)
        return event

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
        pubsub = request.match_info["pubsub"]
        topic = request.match_info["topic"]
        metadata = {
            key[len("metadata.") :]: value
            for key, value in request.query.items()
            if key.startswith("metadata.")
        }
        try:
            self.publish(
                pubsub,
                topic,
                await request.read(),
                request.headers.get("Content-Type", ""),
                metadata,
                request.headers.get("traceparent"),
                request.headers.get("tracestate", ""),
            )
        except PubsubRequestError as exc:
            if exc.message.endswith("is not found"):
                return _http_error(404, "ERR_PUBSUB_NOT_FOUND", exc.message)
            if exc.code is grpc.StatusCode.INVALID_ARGUMENT:
                return _http_error(400, "ERR_PUBSUB_EMPTY", exc.message)
            return _http_error(500, "ERR_PUBSUB_CLOUD_EVENTS_SER", exc.message)
        return web.Response(status=204)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _http_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "message": message}, status=status)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise OSError("HTTP server bound no TCP address")


class _DaprServicer(dapr_pb2_grpc.DaprServicer):
    """The two Dapr RPCs the SDK's pub/sub uses; the base class answers UNIMPLEMENTED."""

    def __init__(self, sidecar: DaprSidecar) -> None:
        self._sidecar = sidecar

    async def PublishEvent(
        self, request: pubsub_pb2.PublishEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        traceparent: str | None = None
        tracestate = ""
        for key, value in context.invocation_metadata() or ():
            if key == "traceparent":
                traceparent = str(value)
            elif key == "tracestate":
                tracestate = str(value)
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
        if first is None or first.WhichOneof("subscribe_topic_events_request_type") != (
            "initial_request"
        ):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "initial request is required")
            return
        init = first.initial_request
        try:
            sub = self._sidecar._open_stream(init.pubsub_name, init.topic, init.dead_letter_topic)
        except PubsubRequestError as exc:
            await context.abort(exc.code, exc.message)
            return
        stream = _Stream(sub)
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


class _Stream:
    """One streaming subscription: events out, acks in, matched by event id."""

    __slots__ = ("_outstanding", "_sub")

    def __init__(self, sub: BrokerSubscription) -> None:
        self._sub = sub
        # Ids are the publisher's when it sent a whole CloudEvent, so they may repeat: keep a
        # list per id and settle the oldest first.
        self._outstanding: dict[str, list[Delivery]] = {}

    async def write_events(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Pump deliveries to the client until the subscription closes."""
        sub = self._sub
        outstanding = self._outstanding
        try:
            while True:
                delivery: Delivery | None = await sub.get()
                while delivery is not None:
                    event = delivery.event
                    pending = outstanding.get(event.id)
                    if pending is None:
                        outstanding[event.id] = [delivery]
                    else:
                        pending.append(delivery)
                    await context.write(_event_message(event))
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
                else:  # RETRY, and statuses this runtime does not know
                    sub.retry(delivery)
        except (grpc.RpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            logger.debug("sidecar: stream read ended: %s", exc)
        finally:
            sub.close()


def _event_message(event: CloudEvent) -> pubsub_pb2.SubscribeTopicEventsResponseAlpha1:
    """The ``event_message`` for one event, as a streaming subscriber receives it."""
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
            topic=event.topic,
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
