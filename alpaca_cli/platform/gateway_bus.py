"""Pub/sub through the gateway's gRPC port (``virtufin.Pubsub``): the bus of an ops shell.

An operator outside the cluster reaches the gateway (a port-forward to :5002, or a TLS ingress)
and nothing else; the platform's own clients publish and subscribe there
(``spec/virtufin-platform.md``, "Gateway gRPC (:5002)"). This is the second implementation of
:class:`~alpaca_cli.platform.bus.Bus`, beside the Dapr one (:mod:`alpaca_cli.platform.pubsub`),
and it mirrors that one's shape: a reader thread per subscription feeding a bounded queue.

What it does about the gateway's ways:

* **Shapes from reflection.** The message shapes drift between platform releases (a CNCF
  CloudEvent with ``attributes`` and a top-level ``text_data``/``binary_data``, or the nested
  data message of the Python docs; ``repeated string topics`` or ``string topic`` in the
  subscribe request). :meth:`GatewayBus.connect` reads ``virtufin.Pubsub`` from the server's
  gRPC reflection and builds message classes from what it finds; fields are found by name,
  never by number. A shape it cannot use is one :class:`~alpaca_cli.errors.UsageError` line
  naming the message and the field.
* **Auth.** ``x-api-key`` goes as gRPC metadata on every call, reflection included;
  ``UNAUTHENTICATED`` -> :class:`~alpaca_cli.errors.CredentialsRefused` (exit 4). The key is
  never logged and never part of a message.
* **In-band refusals.** ``PublishResponse.status.success == false`` ->
  :class:`~alpaca_cli.errors.CommandRefused` (exit 5).
* **Correlation.** A ``correlationid`` extension is sent both as a CloudEvent attribute
  (``ce_string``) and as gRPC metadata (which the gateway stamps on the event).
* **Broadcast, no replay.** A subscription is a per-gateway broadcast (no app id, no consumer
  group); only what is published after the stream is open arrives. :meth:`GatewayBus.subscribe`
  returns once the stream's response headers are in, which a gateway sends once it subscribed.
* **Heartbeats and reaping.** Messages with empty data are heartbeats: counted, never queued.
  A stream that ends or fails (idle sweep, gateway restart, network) is re-opened with backoff
  (:func:`backoff`: 1 s doubling to 30 s). Whatever was published in between is lost for good;
  each such gap is counted (:attr:`GatewaySubscription.gaps`), logged, and handed to the
  ``on_gap`` callback so the caller can say so on stderr and in its report.
* **Start-up.** ``grpc`` and ``grpc_reflection`` are imported inside :meth:`GatewayBus.connect`,
  never when this module is imported, so ``alpaca-md --help`` does not pay for them.

Example::

    with GatewayBus("localhost:5002", api_key=key) as bus:
        with bus.subscribe("response.websocketmanagercontroller") as replies:
            bus.publish("command.websocketmanagercontroller", {"command": "list"}, type="x",
                        extensions={"correlationid": "c-1", "replytopic": replies.topic})
            event = replies.get(timeout=5.0)     # None on timeout
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from alpaca_cli.closing import Closing
from alpaca_cli.errors import (
    GRPC_STATUS_EXIT,
    AlpacaMdError,
    CommandRefused,
    CredentialsRefused,
    ExitCode,
    GatewayUnreachable,
    UsageError,
)
from alpaca_cli.platform.bus import QUEUE_SIZE, SOURCE, Event, QueuedSubscription, grpc_details

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "PUBSUB_SERVICE",
    "RETRYABLE_STATUSES",
    "Gap",
    "GatewayBus",
    "GatewaySubscription",
    "backoff",
    "error_class",
]

PUBSUB_SERVICE: Final = "virtufin.Pubsub"
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
"""Seconds to reach the gateway and read its reflection, and to wait for a stream to open."""
DEFAULT_CALL_TIMEOUT: Final = 30.0
"""Deadline of one ``PublishEvent`` (the gateway's own backend deadline is 30 s)."""
BACKOFF_BASE: Final = 1.0
BACKOFF_MAX: Final = 30.0
"""Re-subscribe delays: 1 s doubling to 30 s, as the platform's TUI does."""

API_KEY_HEADER: Final = "x-api-key"
CORRELATION_HEADER: Final = "correlationid"
SUBSCRIPTION_ID_HEADER: Final = "subscription-id"

Log = Callable[[str], None]

_CLASS_OF_EXIT: Final[Mapping[ExitCode, type[AlpacaMdError]]] = {
    ExitCode.USAGE: UsageError,
    ExitCode.UNREACHABLE: GatewayUnreachable,
    ExitCode.CREDENTIALS: CredentialsRefused,
    ExitCode.REFUSED: CommandRefused,
}

RETRYABLE_STATUSES: Final = frozenset(
    {
        "OK",  # the stream simply ended: a sweep or a gateway shutting down
        "CANCELLED",
        "UNKNOWN",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
)
"""How a subscription stream may end and still be re-opened; any other code ends it for good
(a wrong key, a refused topic, a server that does not serve ``Subscribe``)."""


def error_class(code_name: str) -> type[AlpacaMdError]:
    """The error class for a gRPC status code name (``"UNAVAILABLE"``), from the one table of
    exit codes (:data:`~alpaca_cli.errors.GRPC_STATUS_EXIT`); an unknown name is a refusal."""
    code = GRPC_STATUS_EXIT.get(code_name, ExitCode.REFUSED)
    return _CLASS_OF_EXIT.get(code, AlpacaMdError)


def backoff(base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> Iterator[float]:
    """Re-subscribe delays: ``base``, doubling, then ``cap`` forever. Pure."""
    delay = base
    while True:
        yield min(delay, cap)
        delay = min(delay * 2, cap)


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of time a subscription's stream was down; events published in it are lost.

    ``number`` counts the subscription's gaps from 1; ``seconds`` is how long it lasted (from
    the end of one stream to the headers of the next); ``reason`` why the stream ended.
    """

    topic: str
    number: int
    seconds: float
    reason: str


# -- the shapes, read from reflection ------------------------------------------------------------


def _shape_error(message: Any, field: str, why: str) -> UsageError:
    return UsageError(
        f"the gateway's {message.full_name} has no usable '{field}' field ({why}).",
        hint="This alpaca-md cannot speak this platform's pub/sub shape; use the Dapr bus "
        "beside a sidecar, or report the shape.",
    )


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)  # protobuf < 7


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _string(message: Any, name: str, *, required: bool = True, repeated: bool = False) -> str:
    field = message.fields_by_name.get(name)
    if field is None or field.type != field.TYPE_STRING or _repeated(field) != repeated:
        if required:
            kind = "repeated string" if repeated else "string"
            raise _shape_error(message, name, f"expected {kind}")
        return ""
    return name


def _message_field(message: Any, names: tuple[str, ...], fits: Callable[[Any], bool]) -> Any:
    """The singular message field named one of ``names``; else any whose type ``fits``.

    A field found by name is returned whether or not it fits, so that what is wrong inside
    its message is reported there (``CloudEvent.id``), not as a missing field here.
    """
    for name in names:
        field = message.fields_by_name.get(name)
        if field is not None and field.message_type is not None and not _repeated(field):
            return field
    for field in message.fields:
        if field.message_type is not None and not _repeated(field) and fits(field.message_type):
            return field
    return None


def _is_cloudevent(message: Any) -> bool:
    return all(n in message.fields_by_name for n in ("id", "source", "type"))


def _has_success(message: Any) -> bool:
    field = message.fields_by_name.get("success")
    return field is not None and field.type == field.TYPE_BOOL


def _has_data(message: Any) -> bool:
    return "text_data" in message.fields_by_name or "binary_data" in message.fields_by_name


@dataclass(slots=True)
class _Shapes:
    """What :meth:`GatewayBus.connect` learnt from reflection: classes and field names."""

    publish_request: Any
    publish_response: Any
    subscribe_request: Any
    subscribe_response: Any
    cloudevent: Any
    publish_topic: str
    publish_event: str
    status_field: str  # "" when the success flag is top-level
    topics_field: str
    topics_repeated: bool
    response_topic: str
    response_event: str
    spec_version: str
    attributes: str
    attribute_oneof: str
    data_field: str  # "" when the data oneof is on the CloudEvent itself
    data_oneof: str
    text_data: str
    binary_data: str
    proto_data: str
    shape: str
    """``cncf`` or ``nested``, for ``-v``."""


def read_shapes(service: Any, message_class: Callable[[Any], Any]) -> _Shapes:
    """Find every field the bus needs in the reflected ``virtufin.Pubsub``.

    Raises:
        UsageError: a method or field is missing or of a kind the bus cannot use; the message
            names the message and the field.
    """
    methods = service.methods_by_name
    for name, streaming in (("PublishEvent", False), ("Subscribe", True)):
        method = methods.get(name)
        if method is None:
            raise UsageError(
                f"the gateway's {service.full_name} has no {name} method.",
                hint="Is this the gateway's gRPC port (VIRTUFIN_API_GRPC_PORT, --api-grpc)?",
            )
        if bool(method.server_streaming) != streaming or method.client_streaming:
            raise UsageError(
                f"the gateway's {service.full_name}.{name} is not "
                f"{'server-streaming' if streaming else 'unary'}; alpaca-md cannot call it."
            )
    publish, subscribe = methods["PublishEvent"], methods["Subscribe"]

    request = publish.input_type
    publish_topic = _string(request, "topic")
    event_field = _message_field(request, ("cloudevent", "cloud_event", "event"), _is_cloudevent)
    if event_field is None:
        raise _shape_error(request, "cloudevent", "no CloudEvent message field")
    cloudevent = event_field.message_type

    response = publish.output_type
    status_field = ""
    if not _has_success(response):
        holder = _message_field(response, ("status",), _has_success)
        if holder is None or not _has_success(holder.message_type):
            raise _shape_error(response, "status", "no bool success, top-level or in it")
        status_field = holder.name

    sub_request = subscribe.input_type
    topics = sub_request.fields_by_name.get("topics")
    if topics is not None and topics.type == topics.TYPE_STRING and _repeated(topics):
        topics_field, topics_repeated = "topics", True
    else:
        topics_field, topics_repeated = _string(sub_request, "topic"), False

    sub_response = subscribe.output_type
    response_topic = _string(sub_response, "topic", required=False)
    response_event = _message_field(
        sub_response, ("cloudevent", "cloud_event", "event"), _is_cloudevent
    )
    if response_event is None:
        raise _shape_error(sub_response, "cloudevent", "no CloudEvent message field")
    if response_event.message_type.full_name != cloudevent.full_name:
        raise _shape_error(sub_response, response_event.name, "not the CloudEvent it publishes")

    for name in ("id", "source", "type"):
        _string(cloudevent, name)
    spec_version = _string(cloudevent, "spec_version", required=False) or _string(
        cloudevent, "specversion", required=False
    )
    attributes = cloudevent.fields_by_name.get("attributes")
    if attributes is None or not _is_map(attributes):
        raise _shape_error(cloudevent, "attributes", "expected map<string, attribute value>")
    value = attributes.message_type.fields_by_name["value"].message_type
    ce_string = value.fields_by_name.get("ce_string") if value is not None else None
    if ce_string is None or ce_string.type != ce_string.TYPE_STRING:
        full = value.full_name if value is not None else attributes.full_name
        raise UsageError(
            f"the gateway's {full} has no usable 'ce_string' field (expected string).",
            hint="alpaca-md cannot speak this platform's pub/sub shape.",
        )
    attribute_oneof = ce_string.containing_oneof.name if ce_string.containing_oneof else ""

    if _has_data(cloudevent):
        data_holder, data_field, shape = cloudevent, "", "cncf"
    else:
        nested = _message_field(cloudevent, ("data",), _has_data)
        if nested is None:
            raise _shape_error(cloudevent, "data", "no text_data/binary_data, top-level or nested")
        data_holder, data_field, shape = nested.message_type, nested.name, "nested"
    text = data_holder.fields_by_name.get("text_data")
    binary = data_holder.fields_by_name.get("binary_data")
    proto = data_holder.fields_by_name.get("proto_data")
    text_name = text.name if text is not None and text.type == text.TYPE_STRING else ""
    binary_name = binary.name if binary is not None and binary.type == binary.TYPE_BYTES else ""
    if not text_name or not binary_name:
        missing = "text_data" if not text_name else "binary_data"
        raise _shape_error(data_holder, missing, "expected string text_data and bytes binary_data")
    oneof = text.containing_oneof if text is not None else None

    return _Shapes(
        publish_request=message_class(request),
        publish_response=message_class(response),
        subscribe_request=message_class(sub_request),
        subscribe_response=message_class(sub_response),
        cloudevent=message_class(cloudevent),
        publish_topic=publish_topic,
        publish_event=event_field.name,
        status_field=status_field,
        topics_field=topics_field,
        topics_repeated=topics_repeated,
        response_topic=response_topic,
        response_event=response_event.name,
        spec_version=spec_version,
        attributes="attributes",
        attribute_oneof=attribute_oneof,
        data_field=data_field,
        data_oneof=oneof.name if oneof is not None else "",
        text_data=text_name,
        binary_data=binary_name,
        proto_data=proto.name if proto is not None and proto.message_type is not None else "",
        shape=shape,
    )


def _attribute_value(value: Any, oneof: str) -> Any:
    kind = value.WhichOneof(oneof) if oneof else "ce_string"
    if kind is None:
        return ""
    found = getattr(value, kind)
    if isinstance(found, bytes):
        return base64.b64encode(found).decode("ascii")
    if hasattr(found, "ToJsonString"):  # ce_timestamp
        return found.ToJsonString()
    return found


# -- the bus --------------------------------------------------------------------------------------


def _check_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"gateway gRPC address {address!r} is not HOST:PORT.",
            hint="Give the gateway's gRPC port, e.g. localhost:5002 (VIRTUFIN_API_HOST and "
            "VIRTUFIN_API_GRPC_PORT).",
        )
    return address


class GatewayBus(Closing):
    """A connection to one gateway's gRPC port, for publishing and subscribing.

    Call order: :meth:`connect` (or let the first publish/subscribe do it), any number of
    :meth:`publish` / :meth:`subscribe`, then :meth:`close` (or use ``with``).

    Parameters:
        address: ``HOST:PORT`` of the gateway's gRPC port (``localhost:5002``).
        tls: TLS (an ingress) instead of h2c (a port-forward).
        root_certificates: PEM roots for ``tls``; default the system's.
        api_key: sent as ``x-api-key`` metadata on every call; never logged.
        log: where ``-v`` diagnostics go (gaps, the shapes found); default: dropped.
        connect_timeout: seconds to reach the gateway and read its reflection, and for each
            stream's headers.
        call_timeout: deadline of one ``PublishEvent``.
        on_gap: called from a reader thread with a :class:`Gap` each time a re-opened stream is
            back; keep it short and thread-safe.
        backoff_base, backoff_max: re-subscribe delays (:func:`backoff`).
    """

    name = "gateway"

    def __init__(
        self,
        address: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        api_key: str | None = None,
        log: Log | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        on_gap: Callable[[Gap], None] | None = None,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.address = _check_address(address)
        self.tls = tls
        self.url = f"{'grpcs' if tls else 'grpc'}://{address}"
        """The address as shown in errors (``PlatformUnreachable.url``)."""
        self._root_certificates = root_certificates
        self._api_key = api_key or None
        self._log = log
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.on_gap = on_gap
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.shape = ""
        """``cncf`` or ``nested`` once connected: the CloudEvent shape the gateway speaks."""
        self._lock = threading.Lock()
        self._channel: Any = None
        self._shapes: _Shapes | None = None
        self._publish_call: Any = None
        self._subscribe_call: Any = None
        self._subscriptions: set[GatewaySubscription] = set()

    def __repr__(self) -> str:
        return f"GatewayBus({self.address!r}, tls={self.tls})"

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    @property
    def gaps(self) -> int:
        """Gaps over every open subscription."""
        return sum(sub.gaps for sub in list(self._subscriptions))

    # -- connection -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the channel and read ``virtufin.Pubsub`` from reflection (idempotent).

        Raises:
            GatewayUnreachable: nothing answered at the address within ``connect_timeout``.
            CredentialsRefused: the gateway refused the API key.
            UsageError: the server has no reflection, no ``virtufin.Pubsub``, or a shape the
                bus cannot use.
        """
        with self._lock:
            if self._shapes is not None:
                return
            started = time.monotonic()
            channel = self._open_channel()
            try:
                shapes = self._reflect(channel)
            except BaseException:
                channel.close()
                raise
            self._channel, self._shapes = channel, shapes
            self.shape = shapes.shape
            serialize = _serialize
            self._publish_call = channel.unary_unary(
                f"/{PUBSUB_SERVICE}/PublishEvent",
                request_serializer=serialize,
                response_deserializer=shapes.publish_response.FromString,
            )
            self._subscribe_call = channel.unary_stream(
                f"/{PUBSUB_SERVICE}/Subscribe",
                request_serializer=serialize,
                response_deserializer=shapes.subscribe_response.FromString,
            )
        self.log(
            f"gateway bus {self.url}: {PUBSUB_SERVICE} via reflection in "
            f"{time.monotonic() - started:.2f} s (CloudEvent {shapes.shape}, subscribe "
            f"'{shapes.topics_field}')"
        )

    def _open_channel(self) -> Any:
        import grpc

        if self.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=self._root_certificates)
            channel = grpc.secure_channel(self.address, credentials)
        else:
            channel = grpc.insecure_channel(self.address)
        if self._api_key is not None:
            channel = grpc.intercept_channel(channel, _metadata_interceptor(self._api_key))
        return channel

    def _reflect(self, channel: Any) -> _Shapes:
        import grpc
        from google.protobuf import descriptor_pool, message_factory
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )

        action = "reading its gRPC reflection"
        # The first call bounds the wait (the descriptor database's calls have no deadline).
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            answers = stub.ServerReflectionInfo(iter([request]), timeout=self.connect_timeout)
            listed = next(iter(answers))
            answers.cancel()
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                raise UsageError(
                    f"the server at {self.address} does not serve gRPC reflection.",
                    hint="Is this the gateway's gRPC port (VIRTUFIN_API_GRPC_PORT, --api-grpc)?",
                ) from exc
            raise self.map_error(exc, action=action) from exc
        services = [s.name for s in listed.list_services_response.service]
        if PUBSUB_SERVICE not in services:
            raise UsageError(
                f"the server at {self.address} does not serve {PUBSUB_SERVICE} "
                f"(it serves: {', '.join(services) or 'nothing'}).",
                hint="Is this the gateway's gRPC port (VIRTUFIN_API_GRPC_PORT, --api-grpc)?",
            )
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        try:
            service = pool.FindServiceByName(PUBSUB_SERVICE)
        except grpc.RpcError as exc:
            raise self.map_error(exc, action=action) from exc
        except (KeyError, TypeError, AssertionError) as exc:
            # KeyError: a file the server lists but does not serve; TypeError: an invalid one.
            raise UsageError(
                f"the gateway at {self.address} reflects an unusable {PUBSUB_SERVICE}: {exc}."
            ) from exc
        return read_shapes(service, message_factory.GetMessageClass)

    def _connected(self) -> _Shapes:
        self.connect()
        assert self._shapes is not None
        return self._shapes

    def close(self) -> None:
        """Close every subscription, then the channel. Idempotent."""
        for sub in list(self._subscriptions):
            sub.close()
        with self._lock:
            channel, self._channel = self._channel, None
            self._shapes = None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()

    # -- errors -----------------------------------------------------------------------------------

    def map_error(self, exc: BaseException, *, action: str) -> AlpacaMdError:
        """Translate a ``grpc.RpcError`` raised while doing ``action`` into our tree.

        The class comes from :func:`error_class`; the message names the address and the
        status, never the key.
        """
        if isinstance(exc, AlpacaMdError):
            return exc
        code = getattr(exc, "code", None)
        status = code() if callable(code) else None
        name = getattr(status, "name", "UNKNOWN")
        details = grpc_details(exc)
        cls = error_class(name)
        where = f"the gateway at {self.address}"
        if issubclass(cls, CredentialsRefused):
            return cls(
                f"{where} refused {action} ({name}: {details}).",
                hint="Set VIRTUFIN_API_KEY to the gateway's API key.",
            )
        if issubclass(cls, GatewayUnreachable):
            hint = "Check the address (VIRTUFIN_API_HOST, VIRTUFIN_API_GRPC_PORT, --api-grpc)"
            hint += (
                " and whether it speaks TLS (--api-grpc-tls)."
                if name == "UNAVAILABLE"
                else " and the port-forward."
            )
            return cls(
                f"{where} did not answer {action} ({name}: {details}).", url=self.url, hint=hint
            )
        if issubclass(cls, CommandRefused):
            return cls(f"{where} refused {action} ({name}: {details}).", status=name)
        if issubclass(cls, UsageError):
            return cls(f"{where} rejected {action} ({name}: {details}).")
        return cls(f"{where} failed {action}: {name}: {details}.")

    # -- publishing -------------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any] | bytes,
        *,
        type: str,
        id: str | None = None,
        source: str = SOURCE,
        extensions: Mapping[str, str] | None = None,
        data_content_type: str = "application/json",
    ) -> str:
        """Publish one CloudEvent with ``PublishEvent``; returns its id.

        A mapping travels as JSON ``text_data``, bytes as ``binary_data``; extensions as
        ``ce_string`` attributes, ``correlationid`` also as gRPC metadata. ``data`` is never
        logged (a ``send_raw`` command carries the Alpaca secret).

        Raises:
            CommandRefused: the gateway answered ``success: false``.
            GatewayUnreachable, CredentialsRefused, UsageError: see :meth:`map_error`.
        """
        import grpc

        shapes = self._connected()
        event_id = id or uuid.uuid4().hex
        event = shapes.cloudevent(id=event_id, source=source, type=type)
        if shapes.spec_version:
            setattr(event, shapes.spec_version, "1.0")
        attributes = getattr(event, shapes.attributes)
        attributes["datacontenttype"].ce_string = data_content_type
        for key, value in (extensions or {}).items():
            attributes[key].ce_string = str(value)
        holder = getattr(event, shapes.data_field) if shapes.data_field else event
        if isinstance(data, bytes):
            setattr(holder, shapes.binary_data, data)
        else:
            setattr(holder, shapes.text_data, orjson.dumps(dict(data)).decode())
        request = shapes.publish_request()
        setattr(request, shapes.publish_topic, topic)
        getattr(request, shapes.publish_event).CopyFrom(event)
        correlation = (extensions or {}).get("correlationid")
        metadata = ((CORRELATION_HEADER, str(correlation)),) if correlation else None
        try:
            response = self._publish_call(request, metadata=metadata, timeout=self.call_timeout)
        except grpc.RpcError as exc:
            raise self.map_error(exc, action=f"publishing to topic {topic!r}") from exc
        status = getattr(response, shapes.status_field) if shapes.status_field else response
        if not status.success:
            detail = getattr(status, "message", "") or getattr(status, "status", "") or "no message"
            raise CommandRefused(
                f"the gateway at {self.address} refused publishing to topic {topic!r}: {detail}.",
                status=str(getattr(status, "status", "")) or None,
            )
        self.log(f"published {type} id={event_id} to {topic} through the gateway")
        return event_id

    # -- subscribing ------------------------------------------------------------------------------

    def subscribe(self, topic: str, *, queue_size: int = QUEUE_SIZE) -> GatewaySubscription:
        """Open a ``Subscribe`` stream; returns once the gateway answered with its headers
        (or ``connect_timeout`` passed without them), so what is published after arrives.

        Raises:
            GatewayUnreachable, CredentialsRefused, UsageError: the first stream failed.
        """
        self._connected()
        sub = GatewaySubscription(self, topic, queue_size=queue_size)
        self._subscriptions.add(sub)
        try:
            sub.wait_open(self.connect_timeout)
        except BaseException:
            sub.close()
            raise
        self.log(f"subscribed to {topic} through the gateway")
        return sub

    def _open_stream(self, topic: str) -> Any:
        shapes = self._connected()
        request = shapes.subscribe_request()
        if shapes.topics_repeated:
            getattr(request, shapes.topics_field).append(topic)
        else:
            setattr(request, shapes.topics_field, topic)
        return self._subscribe_call(request)

    def _event_of(self, response: Any, topic: str, received_ns: int) -> Event | None:
        """The :class:`Event` in a ``SubscribeResponse``; ``None`` for a heartbeat."""
        shapes = self._shapes
        assert shapes is not None
        message = getattr(response, shapes.response_event)
        holder = getattr(message, shapes.data_field) if shapes.data_field else message
        kind = holder.WhichOneof(shapes.data_oneof) if shapes.data_oneof else None
        if kind == shapes.text_data or (kind is None and getattr(holder, shapes.text_data)):
            data = getattr(holder, shapes.text_data).encode("utf-8")
        elif kind == shapes.binary_data or kind is None:
            data = getattr(holder, shapes.binary_data)
        elif kind == shapes.proto_data and shapes.proto_data:
            data = getattr(holder, shapes.proto_data).value
        else:
            data = b""
        if not data:
            return None
        oneof = shapes.attribute_oneof
        extensions = {
            key: _attribute_value(value, oneof)
            for key, value in getattr(message, shapes.attributes).items()
        }
        content_type = extensions.pop("datacontenttype", "") or "application/json"
        return Event(
            message.id,
            message.source,
            message.type,
            (getattr(response, shapes.response_topic) if shapes.response_topic else "") or topic,
            str(content_type),
            data,
            extensions,
            received_ns,
        )

    def _forget(self, sub: GatewaySubscription) -> None:
        self._subscriptions.discard(sub)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _metadata_interceptor(api_key: str) -> Any:
    """A client interceptor adding ``x-api-key`` to every call (reflection's too).

    Built here because its base classes are grpc's, imported only on connect.
    """
    import collections

    import grpc

    class _Details(
        collections.namedtuple(
            "_Details",
            ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
        ),
        grpc.ClientCallDetails,
    ):
        pass

    def with_key(details: Any) -> Any:
        metadata = [*(details.metadata or ()), (API_KEY_HEADER, api_key)]
        return _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    class _KeyInterceptor(
        grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
        grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
        grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
        grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
    ):
        def __repr__(self) -> str:
            return "<x-api-key interceptor>"  # never the key

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(with_key(details), request)

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            return continuation(with_key(details), request)

        def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
            return continuation(with_key(details), requests)

        def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
            return continuation(with_key(details), requests)

    return _KeyInterceptor()


# -- a subscription -------------------------------------------------------------------------------


class GatewaySubscription(QueuedSubscription):
    """A topic consumed through ``Subscribe``; events come out of :meth:`get`, in order.

    The reader thread re-opens the stream whenever it ends or fails with a retryable status
    (:data:`RETRYABLE_STATUSES`), with :func:`backoff` between attempts; :attr:`gaps` counts
    the times the stream was down, and :attr:`gap_seconds` adds up how long. Heartbeats (empty
    data) are counted in :attr:`heartbeats` and never queued.

    Thread use: one consumer thread calls :meth:`get`; :meth:`close` may be called from any
    thread. When the queue (``queue_size``) is full the reader waits, which stops it reading the
    stream: HTTP/2 flow control then pushes back on the gateway.
    """

    def __init__(self, bus: GatewayBus, topic: str, *, queue_size: int = QUEUE_SIZE) -> None:
        super().__init__(topic, queue_size=queue_size)
        self._bus = bus
        self._opened = threading.Event()
        self._open_error: AlpacaMdError | None = None
        self._call: Any = None
        self._call_lock = threading.Lock()
        self.heartbeats = 0
        """Empty-data messages seen (the gateway's keep-alives)."""
        self.gaps = 0
        """Times the stream ended or failed and had to be re-opened; counted when it ends."""
        self.gap_seconds = 0.0
        """Total time without a stream, over the gaps that are over."""
        self.subscription_id: str | None = None
        """The gateway's id for the current stream, when it sends one."""
        self._start_reader(f"gateway-{topic}")

    def __repr__(self) -> str:
        return f"GatewaySubscription(topic={self.topic!r}, gaps={self.gaps})"

    def wait_open(self, timeout: float) -> None:
        """Wait until the first stream's headers are in.

        Without headers within ``timeout`` the stream is assumed open (a gateway may send them
        only with its first message); the wait is then logged.

        Raises:
            GatewayUnreachable, CredentialsRefused, UsageError: the first stream failed.
        """
        if not self._opened.wait(timeout):
            self._bus.log(
                f"gateway stream of {self.topic}: no response headers within {timeout:g} s; "
                "assuming it is open"
            )
            return
        if self._open_error is not None:
            raise self._open_error

    # -- the reader thread ------------------------------------------------------------------------

    def _read(self) -> None:
        import grpc

        bus = self._bus
        closed = self._closed
        delays: Iterator[float] | None = None
        gap_started: float | None = None
        gap_reason = reason = ""
        try:
            while not closed.is_set():
                call = bus._open_stream(self.topic)
                with self._call_lock:
                    self._call = call
                if closed.is_set():
                    call.cancel()
                    break
                try:
                    headers = call.initial_metadata()
                    if not call.done():
                        self._stream_open(headers, gap_started, gap_reason)
                        gap_started, delays = None, None
                    self._pump(call)
                    reason = "the gateway ended the stream"
                except grpc.RpcError as exc:
                    if closed.is_set():
                        break
                    name = exc.code().name
                    error = bus.map_error(exc, action=f"subscribing to topic {self.topic!r}")
                    if not self._opened.is_set():  # the first stream: subscribe() raises it
                        self._open_error = error
                        self._opened.set()
                        # ...unless it gave up waiting for headers: then get() raises it.
                        self._fail(error)
                        return
                    if name not in RETRYABLE_STATUSES:
                        self._fail(error)
                        return
                    reason = f"{name}: {grpc_details(exc)}"
                if closed.is_set():
                    break
                self._opened.set()
                if delays is None:
                    delays = backoff(bus.backoff_base, bus.backoff_max)
                delay = next(delays)
                if gap_started is None:
                    gap_started, gap_reason = time.monotonic(), reason
                    self.gaps += 1
                    bus.log(
                        f"gateway stream of {self.topic} ended ({reason}); re-subscribing "
                        f"in {delay:g} s; events published until it is back are lost"
                    )
                else:
                    bus.log(
                        f"gateway stream of {self.topic}: re-subscribing failed ({reason}); "
                        f"next try in {delay:g} s"
                    )
                if closed.wait(delay):
                    break
        except Exception as exc:  # a decoding bug must not hang the consumer
            if not closed.is_set():
                self._fail(AlpacaMdError(f"reading topic {self.topic!r} failed: {exc!r}"))
        finally:
            self._opened.set()
            self._end()

    def _stream_open(self, headers: Any, gap_started: float | None, reason: str) -> None:
        for key, value in headers or ():
            if key == SUBSCRIPTION_ID_HEADER:
                self.subscription_id = str(value)
        self._opened.set()
        if gap_started is None:
            return
        seconds = time.monotonic() - gap_started
        self.gap_seconds += seconds
        gap = Gap(self.topic, self.gaps, seconds, reason)
        self._bus.log(
            f"gateway stream of {self.topic} re-opened after {seconds:.1f} s (gap {gap.number})"
        )
        if self._bus.on_gap is not None:
            self._bus.on_gap(gap)

    def _pump(self, call: Any) -> None:
        event_of = self._bus._event_of
        put = self._put
        topic = self.topic
        for response in call:
            event = event_of(response, topic, time.time_ns())
            if event is None:
                self.heartbeats += 1
                continue
            put(event)

    def _stop_reading(self) -> None:
        """Cancel the current call (the reader then sees :attr:`_closed`); the subscription has
        no acknowledgements, so ``close(linger)`` waits for nothing that matters here."""
        with self._call_lock:
            call = self._call
        if call is not None:
            with contextlib.suppress(Exception):
                call.cancel()
        self._bus._forget(self)

    def close(self, linger: float = 0.0) -> None:
        """End the stream (idempotent). There are no acknowledgements to let go out, so
        ``linger`` (part of the :class:`~alpaca_cli.platform.bus.BusSubscription` contract)
        is not waited for."""
        super().close(0.0)
