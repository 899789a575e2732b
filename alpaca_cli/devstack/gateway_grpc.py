"""The gateway's gRPC port (h2c): pub/sub without a sidecar, ``InvokeJson``, health, reflection.

What the platform's own clients (virtufin-tui, the ``virtufin-api`` clients) use from outside the
cluster, after ``spec/virtufin-platform.md``, "Gateway gRPC (:5002)":

* ``virtufin.Pubsub``: ``PublishEvent`` (unary; in-band ``PublishResponse.status.success``),
  ``Subscribe`` (server streaming), ``Unsubscribe``. The events go to and come from the same
  :class:`~alpaca_cli.devstack.broker.Broker` as the Dapr sidecar's, so a command published
  here reaches the controller worker and the frames the WSM publishes reach these streams.
* ``virtufin.Gateway``: ``InvokeJson`` through :meth:`Gateway.invoke_json
  <alpaca_cli.devstack.gateway.Gateway.invoke_json>` (the HTTP route's own dispatch),
  ``ListServices``, ``ListMethods``.
* ``grpc.health.v1.Health`` (``Check``, ``Watch``) and server reflection (v1alpha), from the
  descriptors of :mod:`alpaca_cli.devstack.gateway_proto`.

Semantics a client must cope with, played honestly:

* **Broadcast per gateway process.** Every ``Subscribe`` stream is a broker group of its own:
  every subscriber to a topic gets every message (no consumer group, unlike a Dapr app id).
* **No replay.** A stream receives what is published after its broker subscriptions exist. The
  stream's response headers (with ``subscription-id``) are sent only once they do, so a client
  that waits for the headers can publish at once without losing the answer.
* **Idle reaping.** A stream without traffic for ``subscription_idle_timeout`` seconds is ended
  (status OK, as the gateway's sweeper removes it). Heartbeats (a ``SubscribeResponse`` whose
  CloudEvent has no data) go out after ``heartbeat_interval`` seconds without traffic and count
  as traffic, so with heartbeats on (shorter than the idle timeout) a stream is never reaped.
* **Correlation.** ``correlationid`` gRPC metadata on ``PublishEvent`` is stamped on the event
  as an extension attribute (it wins over an attribute of the same name).
* **API key** (``api_key``): gRPC metadata ``x-api-key`` on every call except
  ``grpc.health.v1.Health/*``, else ``UNAUTHENTICATED``. Reflection needs it too.

Flow control: a stream pulls from its broker subscriptions only as fast as gRPC accepts writes;
behind that, the broker buffers per stream and its drop-oldest policy applies.

Example::

    server = GatewayGrpc(broker, gateway=gateway, port=0, cloudevent_proto="nested")
    await server.start()
    print(server.port)
    await server.stop()
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
from grpc_reflection.v1alpha import reflection

from alpaca_cli.devstack.broker import Broker, BrokerSubscription, CloudEvent, SubscriptionClosed
from alpaca_cli.devstack.gateway_proto import (
    GATEWAY_SERVICE,
    HEALTH_SERVICE,
    PUBSUB_SERVICE,
    CloudEventShape,
    GatewayMessages,
    SubscribeShape,
    build_messages,
)

if TYPE_CHECKING:
    from alpaca_cli.devstack.gateway import Gateway

__all__ = [
    "API_KEY_HEADER",
    "CORRELATION_HEADER",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_IDLE_TIMEOUT",
    "HEARTBEAT_TYPE",
    "SUBSCRIPTION_ID_HEADER",
    "GatewayGrpc",
]

logger = logging.getLogger(__name__)

API_KEY_HEADER: Final = "x-api-key"
CORRELATION_HEADER: Final = "correlationid"
SUBSCRIPTION_ID_HEADER: Final = "subscription-id"
"""Response header of a ``Subscribe`` stream: the id ``Unsubscribe`` takes (unverified name:
the spec's ``SubscribeResponse`` carries no id, so the embedded gateway hands it out here)."""

DEFAULT_IDLE_TIMEOUT: Final = 300.0
"""Seconds without traffic after which the gateway's sweeper removes a subscription."""
DEFAULT_HEARTBEAT_INTERVAL: Final = 30.0
"""Seconds without traffic after which a stream gets an empty-data heartbeat (unverified:
the spec says heartbeats exist, not how often)."""

HEARTBEAT_TYPE: Final = "com.virtufin.pubsub.heartbeat"
SOURCE: Final = "virtufin-api"
"""``source`` given to events published without one."""

_UNAUTHENTICATED_MESSAGE = "Invalid or missing API key"
_HEALTH_PREFIX = f"/{HEALTH_SERVICE}/"
_QUEUE_SIZE = 256
"""Events a stream holds between its broker subscriptions and the gRPC writes."""
_END: Final[Any] = object()
_SERVING = 1

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
else:  # generic only in the stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor
    Context = Any


class GatewayGrpc:
    """The gateway's gRPC server, in the broker's event loop.

    **Parameters**

    * ``broker`` - the bus events are published to and streamed from (the sidecar's).
    * ``gateway`` - the HTTP gateway whose backends ``InvokeJson`` reaches; ``None`` serves
      ``virtufin.Gateway`` with no services (pub/sub-only tests).
    * ``host``, ``port`` - where to listen (port 0: any free port; :attr:`port` after start).
    * ``api_key`` - when set, required as ``x-api-key`` metadata on every call but Health.
    * ``cloudevent_proto`` - ``"cncf"`` or ``"nested"`` (:mod:`~alpaca_cli.devstack.gateway_proto`).
    * ``subscribe_request`` - ``"topics"`` (repeated) or ``"topic"`` (the older single field).
    * ``subscription_idle_timeout`` - seconds without traffic before a stream is ended; 0 or
      ``None``: never.
    * ``heartbeat_interval`` - seconds without traffic before a heartbeat; 0 or ``None``: none.
    * ``pubsub_name`` - the Dapr component the gateway publishes to (the broker's namespace).
    * ``tls`` - ``(private_key_pem, certificate_chain_pem)`` to serve TLS, as behind the
      platform's ingress; default h2c, as through a port-forward.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        gateway: Gateway | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        cloudevent_proto: CloudEventShape = "cncf",
        subscribe_request: SubscribeShape = "topics",
        subscription_idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        heartbeat_interval: float | None = DEFAULT_HEARTBEAT_INTERVAL,
        pubsub_name: str = "pubsub",
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.broker = broker
        self._tls = tls
        self.gateway = gateway
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._api_key = api_key or None
        self.messages: GatewayMessages = build_messages(cloudevent_proto, subscribe_request)
        """The descriptor pool and classes this server speaks (and reflects)."""
        self.idle_timeout = subscription_idle_timeout or None
        self.heartbeat_interval = heartbeat_interval or None
        self.pubsub_name = pubsub_name
        self._server: grpc.aio.Server | None = None
        self._streams: dict[str, _Stream] = {}
        self._stopping: asyncio.Event | None = None
        self.reaped = 0
        """Streams ended by the idle sweeper so far."""
        self.heartbeats = 0
        """Heartbeats sent so far, over all streams."""

    @property
    def cloudevent_proto(self) -> CloudEventShape:
        return self.messages.cloudevent_shape

    @property
    def port(self) -> int:
        """The bound port (still readable after :meth:`stop`, to restart on it)."""
        if self._port is None:
            raise RuntimeError("GatewayGrpc is not started")
        return self._port

    @property
    def stream_count(self) -> int:
        """Open ``Subscribe`` streams."""
        return len(self._streams)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve.

        Raises:
            OSError: the port is taken (``errno.EADDRINUSE``).
        """
        self._stopping = asyncio.Event()
        interceptors = [] if self._api_key is None else [_KeyInterceptor(self._api_key)]
        # As for the sidecar: without this a second server would "bind" a taken port too.
        server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(self._handlers())
        reflection.enable_server_reflection(
            (PUBSUB_SERVICE, GATEWAY_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME),
            server,
            pool=self.messages.pool,
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        address = f"{host}:{self._requested_port}"
        try:
            if self._tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, grpc.ssl_server_credentials([self._tls]))
        except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
            raise OSError(errno.EADDRINUSE, f"cannot bind gRPC address {address}") from exc
        await server.start()
        self._server, self._port = server, port
        logger.info(
            "gateway gRPC: serving on %s:%d (%s, CloudEvent %s)",
            self.host,
            port,
            "h2c" if self._tls is None else "TLS",
            self.cloudevent_proto,
        )

    async def stop(self) -> None:
        """End every stream (clients see them complete), then the server. Idempotent."""
        self.end_streams()
        if self._stopping is not None:
            self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=1.0)

    async def __aenter__(self) -> GatewayGrpc:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def end_streams(self) -> int:
        """End every open ``Subscribe`` stream now (status OK), as a gateway restart or a
        sweep would; returns how many. Loop thread only."""
        streams = list(self._streams.values())
        for stream in streams:
            stream.end()
        return len(streams)

    # -- handlers -----------------------------------------------------------------------------

    def _handlers(self) -> tuple[grpc.GenericRpcHandler[Any, Any], ...]:
        m = self.messages

        def unary(service: str, method: str, fn: Callable[..., Any]) -> Any:
            request, _ = m.method_types(service, method)
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request.FromString, response_serializer=_serialize
            )

        def streaming(service: str, method: str, fn: Callable[..., Any]) -> Any:
            request, _ = m.method_types(service, method)
            return grpc.unary_stream_rpc_method_handler(
                fn, request_deserializer=request.FromString, response_serializer=_serialize
            )

        return (
            grpc.method_handlers_generic_handler(
                PUBSUB_SERVICE,
                {
                    "PublishEvent": unary(PUBSUB_SERVICE, "PublishEvent", self._publish),
                    "Subscribe": streaming(PUBSUB_SERVICE, "Subscribe", self._subscribe),
                    "Unsubscribe": unary(PUBSUB_SERVICE, "Unsubscribe", self._unsubscribe),
                },
            ),
            grpc.method_handlers_generic_handler(
                GATEWAY_SERVICE,
                {
                    "InvokeJson": unary(GATEWAY_SERVICE, "InvokeJson", self._invoke_json),
                    "ListServices": unary(GATEWAY_SERVICE, "ListServices", self._list_services),
                    "ListMethods": unary(GATEWAY_SERVICE, "ListMethods", self._list_methods),
                },
            ),
            grpc.method_handlers_generic_handler(
                HEALTH_SERVICE,
                {
                    "Check": unary(HEALTH_SERVICE, "Check", self._health_check),
                    "Watch": streaming(HEALTH_SERVICE, "Watch", self._health_watch),
                },
            ),
        )

    def _status(self, success: bool, message: str = "") -> Any:
        return self.messages["virtufin.StatusResponse"](
            success=success, status="OK" if success else "ERROR", message=message
        )

    # -- virtufin.Pubsub ------------------------------------------------------------------------

    async def _publish(self, request: Any, context: Context) -> Any:
        response = self.messages["virtufin.PublishResponse"]
        topic = request.topic
        if not topic:
            return response(status=self._status(False, "Topic is required"))
        if not request.HasField("cloudevent"):
            return response(status=self._status(False, "CloudEvent is required"))
        correlation = None
        for key, value in context.invocation_metadata() or ():
            if key == CORRELATION_HEADER:
                correlation = str(value)
        event = event_in(request.cloudevent, topic, self.pubsub_name, self.cloudevent_proto)
        if correlation:
            event.extensions["correlationid"] = correlation
        self.broker.publish(topic, event)
        return response(status=self._status(True))

    async def _subscribe(self, request: Any, context: Context) -> None:
        if self.messages.subscribe_shape == "topics":
            topics = [t for t in request.topics if t]
        else:
            topics = [request.topic] if request.topic else []
        if not topics:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "At least one topic is required")
            return
        subscription_id = uuid.uuid4().hex
        stream = _Stream(self, topics, subscription_id)
        self._streams[subscription_id] = stream
        try:
            # Only now that the broker subscriptions exist: a client waiting for these headers
            # may publish at once and still receive the answer.
            await context.send_initial_metadata(((SUBSCRIPTION_ID_HEADER, subscription_id),))
            await stream.run(context)
        finally:
            self._streams.pop(subscription_id, None)
            stream.close()

    async def _unsubscribe(self, request: Any, context: Context) -> Any:
        response = self.messages["virtufin.UnsubscribeResponse"]
        stream = self._streams.get(request.subscription_id)
        if stream is None:
            return response(status=self._status(False, "Subscription not found"))
        stream.end()
        return response(status=self._status(True))

    # -- virtufin.Gateway -----------------------------------------------------------------------

    async def _invoke_json(self, request: Any, context: Context) -> Any:
        response = self.messages["virtufin.InvokeJsonResponse"]
        if self.gateway is None:
            return response(
                success=False, status="NOT_FOUND", message=f"Service '{request.service}' not found"
            )
        answer = await self.gateway.invoke_json(
            request.service, request.method, request.request_data
        )
        return response(**answer)

    async def _list_services(self, request: Any, context: Context) -> Any:
        services = list(self.gateway.services) if self.gateway is not None else []
        return self.messages["virtufin.ListServicesResponse"](services=services)

    async def _list_methods(self, request: Any, context: Context) -> Any:
        services = self.gateway.services if self.gateway is not None else {}
        methods = services.get(request.service)
        if methods is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Service '{request.service}' not found")
        return self.messages["virtufin.ListMethodsResponse"](methods=list(methods or ()))

    # -- grpc.health.v1.Health ------------------------------------------------------------------

    def _known(self, service: str) -> bool:
        return service in ("", PUBSUB_SERVICE, GATEWAY_SERVICE, HEALTH_SERVICE)

    async def _health_check(self, request: Any, context: Context) -> Any:
        if not self._known(request.service):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service}")
        return self.messages["grpc.health.v1.HealthCheckResponse"](status=_SERVING)

    async def _health_watch(self, request: Any, context: Context) -> None:
        response = self.messages["grpc.health.v1.HealthCheckResponse"]
        await context.write(response(status=_SERVING if self._known(request.service) else 3))
        if self._stopping is not None:
            await self._stopping.wait()

    # -- what a stream writes ---------------------------------------------------------------------

    def response_of(self, event: CloudEvent) -> Any:
        """The ``SubscribeResponse`` carrying ``event``."""
        cloudevent = event_out(
            self.messages["io.cloudevents.v1.CloudEvent"], event, self.cloudevent_proto
        )
        return self.messages["virtufin.SubscribeResponse"](topic=event.topic, cloudevent=cloudevent)

    def heartbeat(self, topic: str) -> Any:
        """An empty-data ``SubscribeResponse``: keeps the stream from being reaped."""
        self.heartbeats += 1
        cloudevent = self.messages["io.cloudevents.v1.CloudEvent"](
            id=uuid.uuid4().hex, source=SOURCE, spec_version="1.0", type=HEARTBEAT_TYPE
        )
        return self.messages["virtufin.SubscribeResponse"](topic=topic, cloudevent=cloudevent)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class _Stream:
    """One ``Subscribe`` stream: a broker subscription per topic, merged into one queue."""

    __slots__ = ("_pumps", "_queue", "_server", "_subs", "id", "topics")

    def __init__(self, server: GatewayGrpc, topics: list[str], subscription_id: str) -> None:
        self._server = server
        self.id = subscription_id
        self.topics = topics
        self._queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_SIZE)
        # group=None: a group of its own, so every stream gets every message (broadcast).
        self._subs: list[BrokerSubscription] = [
            server.broker.subscribe(topic, pubsub=server.pubsub_name) for topic in topics
        ]
        self._pumps = [asyncio.ensure_future(self._pump(sub)) for sub in self._subs]

    async def _pump(self, sub: BrokerSubscription) -> None:
        queue = self._queue
        try:
            while True:
                delivery = await sub.get()
                sub.ack(delivery)  # the gateway acks its Dapr delivery; clients never ack
                await queue.put(delivery.event)
        except SubscriptionClosed:
            await queue.put(_END)

    def _wake_in(self, last: float, now: float) -> float | None:
        server = self._server
        limits = [t for t in (server.heartbeat_interval, server.idle_timeout) if t is not None]
        if not limits:
            return None
        return max(0.0, min(limits) - (now - last))

    async def run(self, context: Context) -> None:
        """Write events (and heartbeats) until the stream ends, is reaped, or the client goes."""
        server = self._server
        queue = self._queue
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                wait = self._wake_in(last, loop.time())
                try:
                    item = await (
                        queue.get() if wait is None else asyncio.wait_for(queue.get(), wait)
                    )
                except TimeoutError:
                    now = loop.time()
                    idle = server.idle_timeout
                    beat = server.heartbeat_interval
                    beat_due = beat is not None and now - last >= beat
                    # Heartbeats shorter than the idle timeout always win, even after the loop
                    # stalled past both: such a stream is never reaped, whatever the load.
                    if beat_due and (idle is None or (beat is not None and beat < idle)):
                        await context.write(server.heartbeat(self.topics[0]))
                        last = loop.time()
                        continue
                    if idle is not None and now - last >= idle:
                        server.reaped += 1
                        logger.info(
                            "gateway gRPC: subscription %s to %s idle for %.0f s: removed",
                            self.id,
                            ", ".join(self.topics),
                            idle,
                        )
                        return
                    if beat_due:
                        await context.write(server.heartbeat(self.topics[0]))
                        last = loop.time()
                    continue
            if item is _END:
                return
            await context.write(server.response_of(item))
            last = loop.time()

    def end(self) -> None:
        """Close the broker subscriptions: :meth:`run` drains what is queued, then returns."""
        for sub in self._subs:
            sub.close()

    def close(self) -> None:
        self.end()
        for pump in self._pumps:
            pump.cancel()


# -- CloudEvent conversion (both shapes) ----------------------------------------------------------


def _data_holder(message: Any, shape: CloudEventShape) -> Any:
    return message if shape == "cncf" else message.data


def event_in(message: Any, topic: str, pubsub: str, shape: CloudEventShape) -> CloudEvent:
    """A broker event from a published ``io.cloudevents.v1.CloudEvent`` message.

    Missing ``id`` / ``source`` / ``spec_version`` are filled in; ``datacontenttype`` comes from
    the attributes (default by the kind of data); every other attribute is an extension.
    """
    extensions: dict[str, Any] = {}
    for name, value in message.attributes.items():
        extensions[name] = _attribute(value)
    holder = _data_holder(message, shape)
    kind = holder.WhichOneof("data")
    data = b""
    default_type = "application/json"
    if kind == "text_data":
        data = holder.text_data.encode("utf-8")
        default_type = "text/plain"
    elif kind == "binary_data":
        data = holder.binary_data
        default_type = "application/octet-stream"
    elif kind == "proto_data":
        data = holder.proto_data.value
        default_type = "application/protobuf"
    content_type = extensions.pop("datacontenttype", "") or default_type
    return CloudEvent(
        id=message.id or uuid.uuid4().hex,
        source=message.source or SOURCE,
        type=message.type or "com.virtufin.pubsub.event",
        topic=topic,
        pubsubname=pubsub,
        specversion=message.spec_version or "1.0",
        datacontenttype=str(content_type),
        data=data,
        extensions=extensions,
    )


def _attribute(value: Any) -> Any:
    kind = value.WhichOneof("attr")
    if kind is None:
        return ""
    if kind == "ce_timestamp":
        return value.ce_timestamp.ToJsonString()
    if kind == "ce_bytes":
        return base64.b64encode(value.ce_bytes).decode("ascii")
    return getattr(value, kind)


_TEXT_TYPES: Final = ("text/", "application/json", "application/xml")


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(_TEXT_TYPES) or media.endswith(("+json", "+xml"))


def event_out(cls: Any, event: CloudEvent, shape: CloudEventShape) -> Any:
    """The ``io.cloudevents.v1.CloudEvent`` message for a broker event.

    Text content types travel as ``text_data`` (when the bytes are UTF-8), everything else as
    ``binary_data``; extensions become attributes (strings as ``ce_string``).
    """
    message = cls(id=event.id, source=event.source, spec_version=event.specversion, type=event.type)
    attributes = message.attributes
    attributes["datacontenttype"].ce_string = event.datacontenttype
    for name, value in event.extensions.items():
        slot = attributes[name]
        if isinstance(value, bool):
            slot.ce_boolean = value
        elif isinstance(value, int) and -(2**31) <= value < 2**31:
            slot.ce_integer = value
        else:
            slot.ce_string = value if isinstance(value, str) else str(value)
    data = event.data
    if data:
        holder = message if shape == "cncf" else message.data
        if _is_text(event.datacontenttype):
            try:
                holder.text_data = data.decode("utf-8")
            except UnicodeDecodeError:
                holder.binary_data = data
        else:
            holder.binary_data = data
    return message


class _KeyInterceptor(_ServerInterceptor):
    """Refuse every call without the right ``x-api-key``, except the health checks."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if handler_call_details.method.startswith(_HEALTH_PREFIX):
            return await continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata or ():
            if key == API_KEY_HEADER:
                given = value.encode() if isinstance(value, str) else bytes(value)
                if hmac.compare_digest(given, self._key):
                    return await continuation(handler_call_details)
        return _denying(await continuation(handler_call_details))


def _denying(handler: grpc.RpcMethodHandler[Any, Any] | None) -> grpc.RpcMethodHandler[Any, Any]:
    async def deny(request: object, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHENTICATED_MESSAGE)

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
