"""``alpaca-md teardown``: disconnect, StopWorker, DeleteWorker for what the state file names.

Idempotent: anything already gone (NOT_FOUND, ``Connection not found``) counts as done. The
state file is removed only when everything it named is gone; otherwise it is rewritten to name
only what is left, and the command says what that is and exits with the first failure's code,
so running it again later finishes the job.

The connection is closed through the controller worker's ``disconnect`` while that worker still
runs; when the controller cannot be reached, the gateway's ``websocketmanager.Disconnect`` does the
same without it. Pending entries (an object being created when its invocation died) are
looked for by their intent tag and removed. ``--orphans`` also looks for workers *and
connections* tagged as made by alpaca-md that no state file on this host names (a lost or
deleted state file), lists them, and removes them with ``--yes``.

Teardown tries everything (issue 11): Delete even when Stop failed, one more try of each
idempotent call on a transport error, explicit targets (``--worker ID`` / ``--connection ID``:
what a state file no longer names), and ``--forget`` for ids whose platform is gone (its
gateway refuses connections): they are named, then dropped from the state file.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.platform.records import ConnectionInfo, WorkerInfo
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.state import State


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
    orphan_connections: list[ConnectionInfo] = field(default_factory=list)
    """Connections tagged as ours that no state file names (``--orphans``)."""
    other_hosts: int = 0
    nothing_named: bool = False
    """The state file named no connection and no worker (or there was none)."""
    pending_removed: list[str] = field(default_factory=list)
    """Objects of pending entries (creation interrupted) found by their intent tag and removed."""
    forgotten: list[str] = field(default_factory=list)
    """``--forget``: ids dropped from the state file because their platform is gone."""

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
            "orphan_connections": [
                {"id": c.id, "status": c.status, "url": c.url, "tags": dict(c.tags)}
                for c in self.orphan_connections
            ],
            "orphans_removed": self.orphans_removed,
            "orphans_on_other_hosts": self.other_hosts,
            "nothing_named": self.nothing_named,
            "pending_removed": self.pending_removed,
            "forgotten": self.forgotten,
        }


def _not_found(exc: AlpacaMdError) -> bool:
    from alpaca_cli.errors import CommandRefused

    if not isinstance(exc, CommandRefused):
        return False
    return exc.status == "NOT_FOUND" or "not found" in exc.message.lower()


def _disconnect(rt: Runtime, connection_id: str, worker_running: bool) -> bool:
    """Close the connection; ``False`` when it was already gone."""
    from alpaca_cli.errors import AlpacaMdError, ReplyTimeout, SidecarUnreachable
    from alpaca_cli.steps.deploy import once_more

    if worker_running:
        try:
            controller = rt.controller()
            # No second try here: the gateway's Disconnect below is the fallback, and run's
            # teardown has to fit its time budget.
            controller.disconnect(connection_id, retry=False)
            return True
        except (ReplyTimeout, SidecarUnreachable) as exc:
            rt.warn(f"the controller did not answer ({exc}); disconnecting through the gateway")
        except AlpacaMdError as exc:
            if _not_found(exc):
                return False
            raise
    try:
        once_more(lambda: rt.gateway().disconnect(connection_id))
    except AlpacaMdError as exc:
        if _not_found(exc):
            return False
        raise
    return True


def _named_by_own_state(state_path: str | None, kind: str, object_id: str) -> bool:
    """Whether the state file an object's tag points at still names it (then it is not an
    orphan: another invocation's, to be left alone)."""
    from alpaca_cli.errors import StateError
    from alpaca_cli.state import StateStore

    if not state_path:
        return False
    try:
        other = StateStore(Path(state_path)).read()
    except StateError:
        return False
    if other is None:
        return False
    record = other.worker if kind == "worker" else other.connection
    return record is not None and record.id == object_id


_Tagged = TypeVar("_Tagged", "WorkerInfo", "ConnectionInfo")


def find_orphans(
    objects: list[_Tagged], known_ids: set[str], kind: Literal["worker", "connection"]
) -> tuple[list[_Tagged], int]:
    """Objects tagged as ours that no state file on this host names; and how many were made on
    other hosts (their state files cannot be checked from here, so they are left alone)."""
    import socket

    from alpaca_cli.steps.tags import TAG_HOST, TAG_STATE, is_ours

    host = socket.gethostname()
    orphans: list[_Tagged] = []
    other_hosts = 0
    for obj in objects:
        tags = dict(obj.tags)
        if not is_ours(tags) or obj.id in known_ids:
            continue
        if tags.get(TAG_HOST, host) != host:
            other_hosts += 1
            continue
        if _named_by_own_state(tags.get(TAG_STATE), kind, obj.id):
            continue
        orphans.append(obj)
    return orphans, other_hosts


def _platform_gone(rt: Runtime, recorded: str | None) -> str | None:
    """Why the state's platform is gone (its gateway refuses connections), or ``None``.

    The gateway asked is the one the state file was written against (``recorded``), else the
    configured one. Only a refused or unresolvable connection counts: a gateway that answers
    5xx, or a slow one, is still there, and what it holds must not be forgotten.
    """
    import httpx

    from alpaca_cli.errors import GatewayUnreachable

    gateway = rt.gateway()
    if recorded and recorded.rstrip("/") != gateway.base_url:
        from alpaca_cli.platform.gateway import GatewayClient

        key = rt.config.api_key
        gateway = GatewayClient(
            recorded, api_key=key.get_secret_value() if key else None, timeout=10.0
        )
        rt.callback(gateway.close)
    try:
        gateway.list_workers()
    except GatewayUnreachable as exc:
        if isinstance(exc.__cause__, httpx.ConnectError):
            return str(exc)
        return None
    except Exception:
        return None
    return None


def _forget(rt: Runtime, state: State, result: TeardownResult, why: str) -> None:
    named = [f"worker {state.worker.id}"] if state.worker else []
    named += [f"connection {state.connection.id}"] if state.connection else []
    named += [f"pending {p.kind} {p.intent}" for p in state.pending]
    result.forgotten = named
    if named:
        rt.warn(
            f"forgetting {', '.join(named)}: the platform that held them is gone ({why}); "
            f"{rt.store.path} no longer names them"
        )
    state.forget_platform()


def _resolve_pending(rt: Runtime, state: State, result: TeardownResult) -> None:
    """Remove what pending entries created (found by intent tag), then drop the entries.

    Safe: ``deploy`` and ``connect`` hold the state lock while an entry is pending, and we hold
    it now, so every entry here is from an invocation that died mid-create.
    """
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.steps.deploy import once_more, remove_worker
    from alpaca_cli.steps.tags import TAG_INTENT

    gateway = rt.gateway()
    keep = []
    for entry in state.pending:
        try:
            if entry.kind == "worker":
                found = once_more(partial(gateway.list_workers, tags={TAG_INTENT: entry.intent}))
                for worker in found:
                    if remove_worker(gateway, worker.id):
                        result.pending_removed.append(f"worker {worker.id}")
                        rt.progress(f"Removed worker {worker.id} (its creation was interrupted)")
            else:
                conns = once_more(gateway.list_connections)
                for conn in conns:
                    ours = conn.tags.get(TAG_INTENT) == entry.intent
                    if ours and _disconnect(rt, conn.id, worker_running=False):
                        result.pending_removed.append(f"connection {conn.id}")
                        rt.progress(f"Disconnected {conn.id} (its creation was interrupted)")
        except AlpacaMdError as exc:
            result.failures.append(exc)
            result.left.append(f"pending {entry.kind} {entry.intent}")
            keep.append(entry)
    state.pending = keep


def teardown(
    rt: Runtime,
    *,
    orphans: bool = False,
    yes: bool = False,
    worker: str | None = None,
    connection: str | None = None,
    forget: bool = False,
    use_state: bool = True,
) -> TeardownResult:
    """Remove what the state names (and, with ``orphans``, ours that nothing names).

    With ``worker``/``connection`` (explicit targets) only those are removed, whether or not
    the state file names them, and the state file forgets only those: what ``run`` does with
    what it created itself (it owns that, in memory), and a way out for ids no state file
    names any more. ``forget`` drops every id of the state file when its platform is gone.
    ``use_state=False`` (explicit targets only) never reads nor writes the state file: ``run``
    removing what it created when its state file became unreadable or stays locked.

    Never raises for a platform failure on one item: it is recorded in ``failures`` and ``left``
    and the state keeps naming it. Raises only for a corrupt/locked state file.
    """
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.steps.deploy import once_more, remove_worker

    result = TeardownResult()
    gateway: GatewayClient = rt.gateway()
    explicit = worker is not None or connection is not None
    if not use_state and not explicit:
        raise ValueError("teardown(use_state=False) needs worker= or connection=")
    from alpaca_cli.state import State as FreshState

    store: AbstractContextManager[State] = (
        rt.store.transaction() if use_state else contextlib.nullcontext(FreshState())
    )
    with store as state:
        if explicit:
            worker_id, connection_id = worker, connection
        else:
            worker_id = state.worker.id if state.worker else None
            connection_id = state.connection.id if state.connection else None
        result.nothing_named = worker_id is None and connection_id is None and not state.pending
        if forget and not explicit:
            why = _platform_gone(rt, state.gateway_url)
            if why is not None:
                _forget(rt, state, result, why)
                worker_id = connection_id = None
                result.nothing_named = True
        if result.nothing_named and not result.forgotten:
            rt.progress(f"Nothing to tear down: {rt.store.path} names no connection or worker.")
        elif state.gateway_url and state.gateway_url != rt.config.api_url and not explicit:
            rt.warn(
                f"{rt.store.path} was written against the gateway {state.gateway_url}, but this "
                f"teardown talks to {rt.config.api_url} "
                f"(from {rt.config.sources.get('api_url', 'default')}); "
                f"set VIRTUFIN_API_URL={state.gateway_url} if that is the one."
            )
        workers: list[WorkerInfo] | None = None
        worker_running = False
        if worker_id is not None:
            try:
                workers = once_more(gateway.list_workers)
                found = next((w for w in workers if w.id == worker_id), None)
                worker_running = found is not None and found.running
            except AlpacaMdError as exc:
                rt.log(f"ListWorkers failed: {exc}")

        if connection_id is not None:
            cid = connection_id
            try:
                if _disconnect(rt, cid, worker_running):
                    result.disconnected = cid
                    rt.progress(f"Disconnected {cid}")
                else:
                    result.already_gone.append(f"connection {cid}")
                    rt.progress(f"Connection {cid} was already gone")
                if state.connection is not None and state.connection.id == cid:
                    state.drop_connection()
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append(f"connection {cid}")

        if worker_id is not None:
            wid = worker_id
            try:
                if remove_worker(gateway, wid):
                    result.worker_removed = wid
                    rt.progress(f"Stopped and deleted worker {wid}")
                else:
                    result.already_gone.append(f"worker {wid}")
                    rt.progress(f"Worker {wid} was already gone")
                if state.worker is not None and state.worker.id == wid:
                    state.worker = None
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append(f"worker {wid}")

        if state.pending:
            _resolve_pending(rt, state, result)

        if orphans:
            known_workers = {state.worker.id} if state.worker else set()
            known_conns = {state.connection.id} if state.connection else set()
            try:
                all_workers = workers if workers is not None else once_more(gateway.list_workers)
                result.orphans, result.other_hosts = find_orphans(
                    all_workers, known_workers, "worker"
                )
                conns = once_more(gateway.list_connections)
                result.orphan_connections, other = find_orphans(conns, known_conns, "connection")
                result.other_hosts += other
            except AlpacaMdError as exc:
                result.failures.append(exc)
                result.left.append("the orphan search (ListWorkers/List failed)")
            if yes:
                # Connections first: while the worker runs, nothing else needs it.
                for conn in result.orphan_connections:
                    try:
                        once_more(partial(gateway.disconnect, conn.id))
                        result.orphans_removed.append(conn.id)
                        rt.progress(f"Disconnected orphaned connection {conn.id}")
                    except AlpacaMdError as exc:
                        if _not_found(exc):
                            result.orphans_removed.append(conn.id)
                            continue
                        result.failures.append(exc)
                        result.left.append(f"orphaned connection {conn.id}")
                for orphan in result.orphans:
                    try:
                        remove_worker(gateway, orphan.id)
                        result.orphans_removed.append(orphan.id)
                        rt.progress(f"Removed orphaned worker {orphan.id}")
                    except AlpacaMdError as exc:
                        result.failures.append(exc)
                        result.left.append(f"orphaned worker {orphan.id}")

        if use_state and result.complete and state.worker is None and state.connection is None:
            result.state_cleared = rt.store.clear()

    if result.state_cleared:
        rt.progress(f"Removed the state file {rt.store.path}")
    elif not result.complete:
        rt.progress(
            f"Left: {', '.join(result.left)}; the state file {rt.store.path} still names "
            "them. Run `alpaca-md teardown` again once the platform answers."
        )
    return result
