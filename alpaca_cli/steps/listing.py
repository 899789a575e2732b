"""``alpaca-md list``: the platform's WebSocket connections and workers.

Connections come from the controller worker's ``list`` command when the state names a running
controller (the path the rest of the pipeline uses), otherwise from the gateway's
``websocketmanager.List`` (which needs no worker and no sidecar). ``--via`` forces either.
Workers come from ``ListWorkers``. Rows that the state file names are marked, and so are workers
alpaca-md made (by their tags).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from alpaca_cli.platform.records import ConnectionInfo, WorkerInfo
    from alpaca_cli.runtime import Runtime

Via = Literal["auto", "controller", "gateway"]


@dataclass(slots=True)
class ListResult:
    """Workers and connections, and which of them the state file names."""

    workers: list[WorkerInfo] = field(default_factory=list)
    connections: list[ConnectionInfo] = field(default_factory=list)
    connections_via: str = "gateway"
    state_worker_id: str | None = None
    state_connection_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document: stable keys, camelCase-free."""
        from alpaca_cli.steps.deploy import is_ours

        return {
            "connections": [
                {
                    "id": c.id,
                    "url": c.url,
                    "status": c.status,
                    "topic": c.topic,
                    "instance_id": c.instance_id,
                    "created_at": c.created_at,
                    "in_state": c.id == self.state_connection_id,
                }
                for c in self.connections
            ],
            "workers": [
                {
                    "id": w.id,
                    "status": w.status,
                    "mime_type": w.mime_type,
                    "topics": list(w.topics),
                    "created_at": w.created_at,
                    "tags": dict(w.tags),
                    "made_by_alpaca_md": is_ours(dict(w.tags)),
                    "in_state": w.id == self.state_worker_id,
                }
                for w in self.workers
            ],
            "connections_via": self.connections_via,
        }


def list_platform(
    rt: Runtime, *, workers: bool = True, connections: bool = True, via: Via = "auto"
) -> ListResult:
    """Ask the platform for its workers and connections.

    Raises:
        GatewayUnreachable / GatewayUnauthorized / CommandRefused: from the gateway.
        SidecarUnreachable / ReplyTimeout: ``--via controller`` and the controller did not answer.
        StateError: the state file is corrupt.
    """
    from alpaca_cli.errors import ReplyTimeout, SidecarUnreachable

    state = rt.store.read()
    result = ListResult(
        state_worker_id=state.worker.id if state and state.worker else None,
        state_connection_id=state.connection.id if state and state.connection else None,
    )
    gateway = rt.gateway()
    if workers:
        result.workers = gateway.list_workers()
    if connections:
        use_controller = via == "controller" or (via == "auto" and result.state_worker_id)
        if use_controller:
            try:
                result.connections = rt.controller().list()  # through pub/sub
                result.connections_via = "controller"
            except (ReplyTimeout, SidecarUnreachable) as exc:
                if via == "controller":
                    raise
                rt.warn(f"the controller did not answer ({exc}); asking the gateway instead")
                use_controller = False
        if not use_controller:
            result.connections = gateway.list_connections()
            result.connections_via = "gateway"
    return result
