"""Request message schemas of the embedded services, and protobuf-JSON parsing against them.

The real gateway turns ``request_data`` into a protobuf message with protobuf's JSON parser, and
describes each message at ``/v1/grpc/{service}/schema/{method}``. One table serves both here, so
the schema the CLI probes (``topics`` versus the older ``topic``) is the schema that is enforced.

Parsing follows protobuf's JSON mapping: a field may be spelled with its proto name
(``mime_type``) or its JSON name (``mimeType``); ``null`` means the default; ``bytes`` are base64
(standard or URL-safe, padding optional); unknown fields are rejected, as protobuf's parser does
by default, which is what makes an older platform refuse ``topics``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from alpaca_cli.devstack.rpc import RpcError, Status

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_KEY",
    "MAX_TAG_VALUE",
    "Field",
    "Message",
    "SchemaError",
    "check_tags",
    "parse_message",
]

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1024


class SchemaError(ValueError):
    """``request_data`` does not fit the method's message; the text names the field."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a request message."""

    name: str
    number: int
    type: str
    """Protobuf field type name: ``String``, ``Bool``, ``Bytes``, ``Int32`` or ``Message``."""
    repeated: bool = False
    map: bool = False
    """A ``map<string,string>`` (protobuf reports maps as repeated messages)."""
    message: Message | None = None

    @property
    def json_name(self) -> str:
        head, *rest = self.name.split("_")
        return head + "".join(part.capitalize() for part in rest)

    def describe(self) -> dict[str, Any]:
        """The field as the schema endpoint shows it."""
        out: dict[str, Any] = {
            "name": self.name,
            "jsonName": self.json_name,
            "number": self.number,
            "type": self.type,
            "isRepeated": self.repeated or self.map,
            "isMap": self.map,
        }
        if self.message is not None:
            out["messageType"] = self.message.name
            out["fields"] = self.message.describe()
        return out


@dataclass(frozen=True, slots=True)
class Message:
    """A request message type: its full name and fields."""

    name: str
    fields: tuple[Field, ...] = ()

    def describe(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.fields]


def parse_message(message: Message, doc: Any, path: str = "") -> dict[str, Any]:
    """Check ``doc`` against ``message``; return it keyed by proto field names, typed.

    Absent fields are absent from the result (callers apply defaults).

    Raises:
        SchemaError: not an object, an unknown field, or a value of the wrong type.
    """
    if not isinstance(doc, dict):
        raise SchemaError(f"{path or message.name}: expected a JSON object")
    by_name: dict[str, Field] = {}
    for f in message.fields:
        by_name[f.name] = f
        by_name[f.json_name] = f
    out: dict[str, Any] = {}
    for key, value in doc.items():
        found = by_name.get(key)
        where = f"{path}.{key}" if path else key
        if found is None:
            raise SchemaError(f"Unknown field: {where} (message {message.name})")
        f = found
        if f.name in out:
            raise SchemaError(f"Field given twice: {where}")
        if value is None:
            continue
        if f.map:
            out[f.name] = _parse_map(value, where)
        elif f.repeated:
            if not isinstance(value, list):
                raise SchemaError(f"{where}: expected a JSON array")
            out[f.name] = [_parse_scalar(f, item, f"{where}[{i}]") for i, item in enumerate(value)]
        else:
            out[f.name] = _parse_scalar(f, value, where)
    return out


def _parse_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected a JSON object of strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise SchemaError(f"{where}.{k}: expected a string")
    return dict(value)


def _parse_scalar(f: Field, value: Any, where: str) -> Any:
    kind = f.type
    if kind == "String":
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a string")
        return value
    if kind == "Bool":
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: expected true or false")
        return value
    if kind == "Int32":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{where}: expected an integer")
        return value
    if kind == "Bytes":
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a base64 string")
        return _b64(value, where)
    assert kind == "Message" and f.message is not None
    return parse_message(f.message, value, where)


def _b64(text: str, where: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    alphabet = "-_" if ("-" in text or "_" in text) else "+/"
    try:
        return base64.b64decode(padded, altchars=alphabet.encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SchemaError(f"{where}: invalid base64") from exc


def check_tags(tags: dict[str, str]) -> None:
    """The platform's tag limits, the same for workers and connections.

    At most :data:`MAX_TAGS` tags, keys non-empty and up to :data:`MAX_TAG_KEY` characters,
    values up to :data:`MAX_TAG_VALUE` (``spec/virtufin-platform.md``, "Tags").

    Raises:
        RpcError: INVALID_ARGUMENT naming the limit that was broken.
    """
    if len(tags) > MAX_TAGS:
        raise RpcError(Status.INVALID_ARGUMENT, f"Too many tags: {len(tags)} (at most {MAX_TAGS})")
    for key, value in tags.items():
        if not key:
            raise RpcError(Status.INVALID_ARGUMENT, "Tag keys must not be empty")
        if len(key) > MAX_TAG_KEY:
            raise RpcError(
                Status.INVALID_ARGUMENT,
                f"Tag key too long: {len(key)} characters (at most {MAX_TAG_KEY})",
            )
        if len(value) > MAX_TAG_VALUE:
            raise RpcError(
                Status.INVALID_ARGUMENT,
                f"Tag value for {key!r} too long: {len(value)} characters"
                f" (at most {MAX_TAG_VALUE})",
            )
