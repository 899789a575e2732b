"""The platform's records (workers, connections), parsed leniently in one place.

The gateway's ``ListWorkers``/``List`` answers and the controller's ``list`` reply describe the
same objects in drifting shapes (``spec/virtufin-platform.md``, "Version drift"): camelCase,
snake_case or PascalCase keys, missing keys meaning defaults, statuses as names in any case,
prefixed names (``WORKER_STATUS_RUNNING``, ``CONNECTION_STATUS_CONNECTED``) or enum numbers,
and a connection id under ``id``, ``connection_id`` or ``connectionId``. Every client parses
them here, so a new spelling is taught once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CONNECTION_STATUSES",
    "ConnectionInfo",
    "WorkerInfo",
    "connection_status",
    "parse_connection",
    "parse_worker",
    "pick",
    "worker_status",
]

CONNECTION_STATUSES: Final = (
    "UNKNOWN",
    "CONNECTING",
    "CONNECTED",
    "RECONNECTING",
    "DISCONNECTED",
    "ERROR",
)
_CONNECTION_NUMBERS: Final = {
    0: "UNSPECIFIED",
    1: "CONNECTING",
    2: "CONNECTED",
    3: "RECONNECTING",
    4: "DISCONNECTED",
    5: "ERROR",
}
"""Protobuf enum numbers, assumed in declaration order (unverified: the spec lists the names
only). An unknown number stays visible as ``STATUS_<n>``."""
_WORKER_NUMBERS: Final = {0: "UNSPECIFIED", 1: "STOPPED", 2: "RUNNING"}


def pick(data: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` present (and not ``null``) in ``data``, else ``default``."""
    for name in names:
        value = data.get(name)
        if value is not None:
            return value
    return default


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    raw = pick(data, "tags", "Tags", default={})
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def connection_status(value: Any) -> str:
    """A connection status in canonical upper case, whatever form it came in.

    Accepts names in any case (``connected``), prefixed names (``CONNECTION_STATUS_CONNECTED``),
    and enum numbers (``2``, ``"2"``). ``UNKNOWN`` stays ``UNKNOWN``: not connected.
    """
    if value is None or value == "":
        return "UNSPECIFIED"
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return _CONNECTION_NUMBERS.get(value, f"STATUS_{value}")
    text = str(value).strip()
    if text.isdigit():
        return connection_status(int(text))
    upper = text.upper().replace("-", "_")
    for status in CONNECTION_STATUSES:
        if upper == status or upper.endswith("_" + status):
            return status
    return upper


def worker_status(value: object) -> str:
    """``RUNNING`` / ``WORKER_STATUS_RUNNING`` / ``2`` / ``running`` -> ``RUNNING``."""
    if isinstance(value, bool) or value is None:
        return "UNSPECIFIED"
    if isinstance(value, int):
        return _WORKER_NUMBERS.get(value, str(value))
    text = str(value).strip().upper()
    if text.isdigit():
        return _WORKER_NUMBERS.get(int(text), text)
    return text.removeprefix("WORKER_STATUS_") or "UNSPECIFIED"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as ``ListWorkers`` reports it."""

    id: str
    status: str = "UNSPECIFIED"
    mime_type: str = ""
    language: str = ""
    topics: tuple[str, ...] = ()
    created_at: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One WebSocketManager connection record (the gateway's ``List`` or the controller's
    ``list``)."""

    id: str
    url: str = ""
    status: str = "UNSPECIFIED"
    topic: str = ""
    instance_id: str = ""
    created_at: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def publishing(self) -> bool:
        return bool(self.topic)

    @property
    def connected(self) -> bool:
        """Only ``CONNECTED`` is connected (``UNKNOWN`` is not)."""
        return self.status == "CONNECTED"


def parse_worker(data: Mapping[str, Any]) -> WorkerInfo:
    """A worker record in camelCase or snake_case; missing keys take their defaults."""
    topics_raw = pick(data, "topics")
    if topics_raw is None:
        single = pick(data, "topic")
        topics_raw = [single] if single else []
    if isinstance(topics_raw, str):
        topics_raw = [topics_raw]
    created = pick(data, "createdAt", "created_at")
    return WorkerInfo(
        id=str(pick(data, "id", "workerId", "worker_id", default="")),
        status=worker_status(pick(data, "status", "state")),
        mime_type=str(pick(data, "mimeType", "mime_type", default="")),
        language=str(pick(data, "language", default="")),
        topics=tuple(str(t) for t in topics_raw),
        created_at=str(created) if created is not None else None,
        tags=_tags(data),
    )


def parse_connection(data: Mapping[str, Any]) -> ConnectionInfo:
    """A connection record in camelCase, snake_case or PascalCase; the status canonical
    (:func:`connection_status`)."""
    created = pick(data, "createdAt", "created_at", "CreatedAt")
    return ConnectionInfo(
        id=str(pick(data, "id", "Id", "connectionId", "connection_id", default="")),
        url=str(pick(data, "url", "Url", default="")),
        status=connection_status(pick(data, "status", "Status", "state")),
        topic=str(pick(data, "topic", "Topic", default="")),
        instance_id=str(pick(data, "instanceId", "instance_id", "InstanceId", default="")),
        created_at=str(created) if created is not None else None,
        tags=_tags(data),
    )
