"""The message shapes of the gateway's gRPC port, built as descriptors in Python.

The embedded gateway needs real protobuf descriptors twice: to (de)serialise its messages and to
serve them through server reflection, from which clients (ours included) build their own
message classes. No ``protoc`` runs here and no generated code is copied in, so the
``.proto`` files of ``spec/virtufin-platform.md`` ("Gateway gRPC (:5002)") are written out as
``FileDescriptorProto`` values and loaded into a :class:`~google.protobuf.descriptor_pool.
DescriptorPool` of their own (never the process-wide default pool, so that two gateways with
different shapes, or a generated copy of the same names, can live in one process).

Shapes that drift between platform releases are parameters:

* ``cloudevent`` -- ``"cncf"``: the CNCF ``io.cloudevents.v1.CloudEvent`` (``id=1, source=2,
  spec_version=3, type=4, map<string,CloudEventAttributeValue> attributes=5, oneof data
  {bytes binary_data=6; string text_data=7; google.protobuf.Any proto_data=8}``); ``"nested"``:
  the shape the platform's Python docs build (``CloudEvent(id, source, type,
  data=CloudEvent.CloudEventData(text_data=...))``). The docs give no field numbers for it; the
  ones chosen here (``data=5``, ``attributes=6``, the data oneof numbered from 1 inside
  ``CloudEventData``) are a guess on purpose different from CNCF's, so a client that hard-codes
  numbers instead of reading reflection fails against one of the two.
* ``subscribe_request`` -- ``"topics"``: ``SubscribeRequest{repeated string topics = 1}``
  (newest); ``"topic"``: the older ``PubsubSubscribeRequest{string topic = 1}``.

Shapes the spec leaves open and that alpaca-md never relies on (``UnsubscribeResponse``,
``ListServices`` / ``ListMethods`` messages) are the simplest plausible ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

__all__ = [
    "CLOUDEVENT_SHAPES",
    "GATEWAY_SERVICE",
    "HEALTH_SERVICE",
    "PUBSUB_SERVICE",
    "SUBSCRIBE_SHAPES",
    "CloudEventShape",
    "GatewayMessages",
    "SubscribeShape",
    "build_messages",
]

CloudEventShape: TypeAlias = Literal["cncf", "nested"]
"""Which ``io.cloudevents.v1.CloudEvent`` the gateway speaks (module doc)."""
CLOUDEVENT_SHAPES: tuple[CloudEventShape, ...] = get_args(CloudEventShape)

SubscribeShape: TypeAlias = Literal["topics", "topic"]
"""Which ``Subscribe`` request the gateway takes (module doc)."""
SUBSCRIBE_SHAPES: tuple[SubscribeShape, ...] = get_args(SubscribeShape)

PUBSUB_SERVICE = "virtufin.Pubsub"
GATEWAY_SERVICE = "virtufin.Gateway"
HEALTH_SERVICE = "grpc.health.v1.Health"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL = _F.LABEL_OPTIONAL
_REPEATED = _F.LABEL_REPEATED
_STRING = _F.TYPE_STRING
_BYTES = _F.TYPE_BYTES
_BOOL = _F.TYPE_BOOL
_INT32 = _F.TYPE_INT32
_MESSAGE = _F.TYPE_MESSAGE
_ENUM = _F.TYPE_ENUM


def _file(name: str, package: str, *deps: str) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto(
        name=name, package=package, syntax="proto3", dependency=list(deps)
    )


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    type_name: str = "",
    repeated: bool = False,
    oneof: int | None = None,
) -> None:
    field = message.field.add(
        name=name,
        number=number,
        type=kind,
        label=_REPEATED if repeated else _OPTIONAL,
        json_name=_camel(name),
    )
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _map_field(
    message: descriptor_pb2.DescriptorProto, name: str, number: int, value_type: str, scope: str
) -> None:
    """``map<string, value_type> name = number`` (a repeated nested ``...Entry`` message)."""
    entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _STRING)
    _field(entry, "value", 2, _MESSAGE, type_name=value_type)
    _field(message, name, number, _MESSAGE, type_name=f"{scope}.{entry_name}", repeated=True)


def _cloudevents_file(shape: CloudEventShape) -> descriptor_pb2.FileDescriptorProto:
    f = _file(
        "io/cloudevents/v1/cloudevents.proto",
        "io.cloudevents.v1",
        "google/protobuf/any.proto",
        "google/protobuf/timestamp.proto",
    )
    attr = f.message_type.add(name="CloudEventAttributeValue")
    attr.oneof_decl.add(name="attr")
    for number, (name, kind) in enumerate(
        (
            ("ce_boolean", _BOOL),
            ("ce_integer", _INT32),
            ("ce_string", _STRING),
            ("ce_bytes", _BYTES),
            ("ce_uri", _STRING),
            ("ce_uri_ref", _STRING),
        ),
        start=1,
    ):
        _field(attr, name, number, kind, oneof=0)
    _field(attr, "ce_timestamp", 7, _MESSAGE, type_name=".google.protobuf.Timestamp", oneof=0)

    event = f.message_type.add(name="CloudEvent")
    for number, name in enumerate(("id", "source", "spec_version", "type"), start=1):
        _field(event, name, number, _STRING)
    scope = ".io.cloudevents.v1.CloudEvent"
    value_type = ".io.cloudevents.v1.CloudEventAttributeValue"
    if shape == "cncf":
        _map_field(event, "attributes", 5, value_type, scope)
        _data_oneof(event, first=6)
    else:
        data = event.nested_type.add(name="CloudEventData")
        _data_oneof(data, first=1)
        _field(event, "data", 5, _MESSAGE, type_name=f"{scope}.CloudEventData")
        _map_field(event, "attributes", 6, value_type, scope)
    return f


def _data_oneof(message: descriptor_pb2.DescriptorProto, *, first: int) -> None:
    index = len(message.oneof_decl)
    message.oneof_decl.add(name="data")
    _field(message, "binary_data", first, _BYTES, oneof=index)
    _field(message, "text_data", first + 1, _STRING, oneof=index)
    _field(
        message, "proto_data", first + 2, _MESSAGE, type_name=".google.protobuf.Any", oneof=index
    )


def _virtufin_file(subscribe: SubscribeShape) -> descriptor_pb2.FileDescriptorProto:
    f = _file("virtufin/gateway.proto", "virtufin", "io/cloudevents/v1/cloudevents.proto")
    cloudevent = ".io.cloudevents.v1.CloudEvent"

    def message(name: str, *fields: tuple[str, int, int, str, bool]) -> None:
        m = f.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            _field(m, field_name, number, kind, type_name=type_name, repeated=repeated)

    status = ".virtufin.StatusResponse"
    message(
        "StatusResponse",
        ("success", 1, _BOOL, "", False),
        ("status", 2, _STRING, "", False),
        ("message", 3, _STRING, "", False),
    )
    message(
        "PublishRequest",
        ("topic", 1, _STRING, "", False),
        ("cloudevent", 2, _MESSAGE, cloudevent, False),
    )
    message("PublishResponse", ("status", 1, _MESSAGE, status, False))
    if subscribe == "topics":
        subscribe_request = "SubscribeRequest"
        message(subscribe_request, ("topics", 1, _STRING, "", True))
    else:
        subscribe_request = "PubsubSubscribeRequest"
        message(subscribe_request, ("topic", 1, _STRING, "", False))
    message(
        "SubscribeResponse",
        ("topic", 1, _STRING, "", False),
        ("cloudevent", 2, _MESSAGE, cloudevent, False),
    )
    message("UnsubscribeRequest", ("subscription_id", 1, _STRING, "", False))
    message("UnsubscribeResponse", ("status", 1, _MESSAGE, status, False))
    message(
        "InvokeJsonRequest",
        ("service", 1, _STRING, "", False),
        ("method", 2, _STRING, "", False),
        ("request_data", 3, _STRING, "", False),
    )
    message(
        "InvokeJsonResponse",
        ("success", 1, _BOOL, "", False),
        ("status", 2, _STRING, "", False),
        ("message", 3, _STRING, "", False),
        ("response_data", 4, _STRING, "", False),
    )
    message("ListServicesRequest")
    message("ListServicesResponse", ("services", 1, _STRING, "", True))
    message("ListMethodsRequest", ("service", 1, _STRING, "", False))
    message("ListMethodsResponse", ("methods", 1, _STRING, "", True))

    pubsub = f.service.add(name="Pubsub")
    pubsub.method.add(
        name="PublishEvent",
        input_type=".virtufin.PublishRequest",
        output_type=".virtufin.PublishResponse",
    )
    pubsub.method.add(
        name="Subscribe",
        input_type=f".virtufin.{subscribe_request}",
        output_type=".virtufin.SubscribeResponse",
        server_streaming=True,
    )
    pubsub.method.add(
        name="Unsubscribe",
        input_type=".virtufin.UnsubscribeRequest",
        output_type=".virtufin.UnsubscribeResponse",
    )
    gateway = f.service.add(name="Gateway")
    for name in ("InvokeJson", "ListServices", "ListMethods"):
        gateway.method.add(
            name=name,
            input_type=f".virtufin.{name}Request",
            output_type=f".virtufin.{name}Response",
        )
    return f


def _health_file() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/health/v1/health.proto`` (the standard gRPC health checking protocol)."""
    f = _file("grpc/health/v1/health.proto", "grpc.health.v1")
    request = f.message_type.add(name="HealthCheckRequest")
    _field(request, "service", 1, _STRING)
    response = f.message_type.add(name="HealthCheckResponse")
    status = response.enum_type.add(name="ServingStatus")
    for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
        status.value.add(name=name, number=number)
    _field(
        response, "status", 1, _ENUM, type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus"
    )
    service = f.service.add(name="Health")
    request_type = ".grpc.health.v1.HealthCheckRequest"
    response_type = ".grpc.health.v1.HealthCheckResponse"
    service.method.add(name="Check", input_type=request_type, output_type=response_type)
    service.method.add(
        name="Watch", input_type=request_type, output_type=response_type, server_streaming=True
    )
    return f


def _copy(file: Any) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


@dataclass(frozen=True, slots=True)
class GatewayMessages:
    """The pool and the message classes of one gateway's shapes (:func:`build_messages`)."""

    pool: descriptor_pool.DescriptorPool
    cloudevent_shape: CloudEventShape
    subscribe_shape: SubscribeShape
    classes: dict[str, Any]
    """Message classes by full name (``virtufin.PublishRequest`` ...)."""

    def __getitem__(self, full_name: str) -> Any:
        return self.classes[full_name]

    def method_types(self, service: str, method: str) -> tuple[Any, Any]:
        """The (request, response) classes of ``service/method``."""
        descriptor = self.pool.FindServiceByName(service).methods_by_name[method]
        return (
            self.classes[descriptor.input_type.full_name],
            self.classes[descriptor.output_type.full_name],
        )


def build_messages(
    cloudevent: CloudEventShape = "cncf", subscribe_request: SubscribeShape = "topics"
) -> GatewayMessages:
    """A fresh descriptor pool with every file the gateway's gRPC port serves, and its classes.

    The pool also holds the files those depend on (``google/protobuf/any.proto``,
    ``timestamp.proto``) and gRPC's own reflection service, so that a reflection client can
    resolve every symbol the server lists.

    Raises:
        ValueError: an unknown shape name.
    """
    if cloudevent not in CLOUDEVENT_SHAPES:
        raise ValueError(f"cloudevent must be one of {', '.join(CLOUDEVENT_SHAPES)}")
    if subscribe_request not in SUBSCRIBE_SHAPES:
        raise ValueError(f"subscribe_request must be one of {', '.join(SUBSCRIBE_SHAPES)}")
    from grpc_reflection.v1alpha import reflection_pb2

    pool = descriptor_pool.DescriptorPool()
    files = [
        _copy(any_pb2.DESCRIPTOR),
        _copy(timestamp_pb2.DESCRIPTOR),
        _copy(reflection_pb2.DESCRIPTOR),
        _cloudevents_file(cloudevent),
        _virtufin_file(subscribe_request),
        _health_file(),
    ]
    classes: dict[str, Any] = {}
    for proto in files:
        pool.Add(proto)
    for proto in files[3:]:
        for message in proto.message_type:
            full_name = f"{proto.package}.{message.name}"
            classes[full_name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(full_name)
            )
    return GatewayMessages(pool, cloudevent, subscribe_request, classes)
