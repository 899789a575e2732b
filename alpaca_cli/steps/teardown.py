"""``alpaca-md teardown``: disconnect, StopWorker, DeleteWorker for what the state file names.

Idempotent: anything already gone (NOT_FOUND, ``Connection not found``) counts as done. The
state file is removed only when everything it named is gone; otherwise it is rewritten to name
only what is left, and the command says what that is and exits with the first failure's code,
so running it again later finishes the job.

The connection is closed through the controller worker's ``disconnect`` while that worker still
runs; when the controller cannot be reached, the gateway's ``websocketmanager.Disconnect`` does the
same without it. ``--orphans`` also looks for workers tagged as made by alpaca-md that no state
file on this host names (a lost or deleted state file), lists them, and removes them with
``--yes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.platform.records import WorkerInfo
    from alpaca_cli.runtime import Runtime


@dataclass(slots=True)
class TeardownResult:
    """What teardown removed, what is left, and why."""

    disconnected: str | None = None
    worker_removed: str | None = None
    already_gone: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    failures: list[AlpacaMdError] = field(default_factory=list)
    state_cleared: bool = False
    orphans: list[WorkerInfo] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    other_hosts: int = 0
    nothing_named: bool = False
    """The state file named no connection and no worker (or there was none)."""

    @property
    def complete(self) -> bool:
        return not self.left

    def to_json(self) -> dict[str, Any]:
        return {
            "disconnected": self.disconnected,
            "worker_removed": self.worker_removed,
            "already_gone": self.already_gone,
            "left": self.left,
            "errors": [str(f) for f in self.failures],
            "state_cleared": self.state_cleared,
            "orphans": [
                {"id": w.id, "status": w.status, "tags": dict(w.tags)} for w in self.orphans
            ],
            "orphans_removed": self.orphans_removed,
            "orphans_on_other_hosts": self.other_hosts,
            "nothing_named": self.nothing_named,
        }


def _not_found(exc: AlpacaMdError) -> bool:
    from alpaca_cli.errors import CommandRefused

    if not isinstance(exc, CommandRefused):
        return False
    return exc.status == "NOT_FOUND" or "not found" in exc.message.lower()


def _disconnect(rt: Runtime, connection_id: str, worker_running: bool) -> bool:
    """Close the connection; ``False`` when it was already gone."""
    from alpaca_cli.errors import AlpacaMdError, ReplyTimeout, SidecarUnreachable

    if worker_running:
        try:
            controller = rt.controller()
            controller.disconnect(connection_id)
            return True
        except (ReplyTimeout, SidecarUnreachable) as exc:
            rt.warn(f"the controller did not answer ({exc}); disconnecting through the gateway")
        except AlpacaMdError as exc:
            if _not_found(exc):
                return False
            raise
    try:
        rt.gateway().disconnect(connection_id)
    except AlpacaMdError as exc:
        if _not_found(exc):
            return False
        raise
    return True


def find_orphans(
    rt: Runtime, workers: list[WorkerInfo], known_ids: set[str]
) -> tuple[list[WorkerInfo], int]:
    """Workers tagged as ours that no state file on this host names; and how many were made on
    other hosts (their state files cannot be checked from here, so they are left alone)."""
    import socket

    from alpaca_cli.errors import StateError
    from alpaca_cli.state import StateStore
    from alpaca_cli.steps.deploy import TAG_HOST, TAG_STATE, is_ours

    host = socket.gethostname()
    orphans: list[WorkerInfo] = []
    other_hosts = 0
    for worker in workers:
        tags = dict(worker.tags)
        if not is_ours(tags) or worker.id in known_ids:
            continue
        if tags.get(TAG_HOST, host) != host:
            other_hosts += 1
            continue
        state_path = tags.get(TAG_STATE)
        if state_path:
            try:
                other = StateStore(Path(state_path)).read()
            except StateError:
                other = None
            if other is not None and other.worker is not None and other.worker.id == worker.id:
                continue
        orphans.append(worker)
    return orphans, other_hosts


def teardown(rt: Runtime, *, orphans: bool = False, yes: bool = False) -> TeardownResult:
    """Remove what the state names (and, with ``orphans``, ours that nothing names).

    Never raises for a platform failure on one item: it is recorded in ``failures`` and ``left``
    and the state keeps naming it. Raises only for a corrupt/locked state file.
    """
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.steps.deploy import remove_worker

    result = TeardownResult()
    gateway: GatewayClient = rt.gateway()
    with rt.store.transaction() as state:
        result.nothing_named = state.connection is None and state.worker is None
        if result.nothing_named:
            rt.progress(f"Nothing to tear down: {rt.store.path} names no connection or worker.")
        elif state.gateway_url and state.gateway_url != rt.config.api_url:
            rt.warn(
                f"{rt.store.path} was written against the gateway {state.gateway_url}, but this "
                f"teardown talks to {rt.config.api_url} "
                f"(from {rt.config.sources.get('api_url', 'default')}); "
                f"set VIRTUFIN_API_URL={state.gateway_url} if that is the one."
            )
        workers: list[WorkerInfo] | None = None
        worker_running = False
        if state.worker is not None:
            try:
                workers = gateway.list_workers()
                found = next((w for w in workers if w.id == state.worker.id), None)
                worker_running = found is not None and found.running
            except AlpacaMdError as exc:
                rt.log(f"ListWorkers failed: {exc}")

        if state.connection is not None:
            cid = state.connection.id
            try:
                if _disconnect(rt, cid, worker_running):
                    result.disconnected = cid
                    rt.progress(f"Disconnected {cid}")
                else:
                    result.already_gone.append(f"connection {cid}")
                    rt.progress(f"Connection {cid} was already gone")
                state.connection = None
                state.publish_topic = None
                state.subscriptions = {}
                state.authenticated_at = None
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append(f"connection {cid}")

        if state.worker is not None:
            wid = state.worker.id
            try:
                if remove_worker(gateway, wid):
                    result.worker_removed = wid
                    rt.progress(f"Stopped and deleted worker {wid}")
                else:
                    result.already_gone.append(f"worker {wid}")
                    rt.progress(f"Worker {wid} was already gone")
                state.worker = None
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append(f"worker {wid}")

        if orphans:
            try:
                all_workers = workers if workers is not None else gateway.list_workers()
                known = {state.worker.id} if state.worker else set()
                result.orphans, result.other_hosts = find_orphans(rt, all_workers, known)
                for orphan in result.orphans:
                    if not yes:
                        continue
                    try:
                        remove_worker(gateway, orphan.id)
                        result.orphans_removed.append(orphan.id)
                        rt.progress(f"Removed orphaned worker {orphan.id}")
                    except AlpacaMdError as exc:
                        result.failures.append(exc)
                        result.left.append(f"orphaned worker {orphan.id}")
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append("the orphan search (ListWorkers failed)")

        if result.complete:
            result.state_cleared = rt.store.clear()

    if result.state_cleared:
        rt.progress(f"Removed the state file {rt.store.path}")
    elif not result.complete:
        rt.progress(
            f"Left: {', '.join(result.left)}; the state file {rt.store.path} still names "
            "them. Run `alpaca-md teardown` again once the platform answers."
        )
    return result
