"""The state file: what one command leaves for the next (worker id, connection id, topic...).

Stable API (other modules rely on it)::

    State (a msgspec Struct, version 1): run_id, gateway_url, build, worker, connection,
        publish_topic, channel, subscriptions (channel -> symbols), authenticated_at, pending,
        created_at, updated_at
    BuildRecord(project, package_path, package_sha256, built_at)
    WorkerRecord(id, topics, package_path, package_url, package_sha256, created_at)
    ConnectionRecord(id, url, created_at)
    PendingRecord(kind, intent, url, created_at)   # an object about to be created (tagged)
    StateStore(path, *, lock_timeout=30.0)
        .read() -> State | None                 # no lock: writes are atomic renames
        .transaction() -> ContextManager[State] # exclusive lock across read-modify-write;
                                                #  written back (atomically) only on a clean exit
                                                #  and only when something changed
        .clear() -> bool                        # remove the file (under the lock)
    utcnow() -> datetime

Why this shape: every subcommand is a separate process, and an operator (or ``run``) may start two
at once. A sidecar ``<state>.lock`` file held with ``fcntl.flock`` serialises read-modify-write;
the data file itself is only ever replaced by ``os.replace`` of a fsynced temporary file in the
same directory, so a reader or a crash never sees half a file. A corrupt or unknown-version file
raises :class:`~alpaca_cli.errors.StateError` and is never overwritten: the operator decides.

Never a secret: the model forbids unknown fields, and none of its fields holds a credential.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from alpaca_cli.errors import StateError

STATE_VERSION = 1


def utcnow() -> datetime:
    """Timezone-aware UTC now (serialised as RFC 3339)."""
    return datetime.now(UTC)


class _Record(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A record of the state file: typed fields, unknown ones refused when read.

    Why msgspec and not pydantic: every command reads the state file, and importing pydantic
    and building these models cost ~0.1 s of CPU (a fifth of ``alpaca-md --json list``);
    msgspec (already the codec's) validates the same shape in microseconds. The few methods
    below keep the names callers used (``model_dump``, ``model_dump_json``).
    """

    def model_dump(self, *, mode: Literal["json"] = "json") -> dict[str, Any]:
        """The record as JSON-ready builtins (datetimes as RFC 3339 text)."""
        data = msgspec.to_builtins(self)
        assert isinstance(data, dict)
        return data

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """The record as JSON text (``indent`` spaces per level when given)."""
        raw = msgspec.json.encode(self)
        if indent is not None:
            raw = msgspec.json.format(raw, indent=indent)
        return raw.decode()


class BuildRecord(_Record, kw_only=True):  # (kw_only repeated for type checkers)
    """What ``build`` produced."""

    project: str | None = None
    package_path: str
    package_sha256: str
    built_at: datetime = msgspec.field(default_factory=utcnow)


class WorkerRecord(_Record):
    """The controller worker ``deploy`` created."""

    id: str
    topics: list[str] = msgspec.field(default_factory=list)
    package_path: str | None = None
    package_url: str | None = None
    package_sha256: str | None = None
    topic_field: Literal["topics", "topic"] = "topics"
    """Which CreateWorker field the platform accepted (``topic`` on older platforms)."""
    created_at: datetime = msgspec.field(default_factory=utcnow)


class ConnectionRecord(_Record):
    """The upstream WebSocket ``connect`` opened through the controller."""

    id: str
    url: str
    created_at: datetime = msgspec.field(default_factory=utcnow)


class PendingRecord(_Record):
    """A worker or connection this invocation is about to create ("intent before side effect").

    Written (and fsynced) before CreateWorker or the controller's ``create``; the object is
    tagged with ``intent`` (``alpaca-md-intent``). A crash at any instant therefore leaves an
    object that is either recorded or findable by that tag: ``teardown`` looks for it and
    removes it, then drops the entry.
    """

    kind: Literal["worker", "connection"]
    intent: str
    url: str | None = None
    """For a connection: the upstream URL (a dropped ``create`` is looked for by it too)."""
    created_at: datetime = msgspec.field(default_factory=utcnow)


def _new_run_id() -> str:
    return uuid.uuid4().hex


class State(_Record):
    """Version 1 of the state file."""

    version: Literal[1] = 1
    run_id: str = msgspec.field(default_factory=_new_run_id)
    gateway_url: str | None = None
    build: BuildRecord | None = None
    worker: WorkerRecord | None = None
    connection: ConnectionRecord | None = None
    publish_topic: str | None = None
    channel: str | None = None
    subscriptions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Confirmed subscriptions: channel -> symbols."""
    authenticated_at: datetime | None = None
    pending: list[PendingRecord] = msgspec.field(default_factory=list)
    """Objects being created, not yet recorded above (see :class:`PendingRecord`)."""
    created_at: datetime = msgspec.field(default_factory=utcnow)
    updated_at: datetime = msgspec.field(default_factory=utcnow)

    def drop_connection(self) -> None:
        """Forget the connection and what only it gave: its publish topic, its confirmed
        subscriptions and its authentication."""
        self.connection = None
        self.publish_topic = None
        self.subscriptions = {}
        self.authenticated_at = None

    def forget_platform(self) -> None:
        """Forget every object on the platform: the worker, the connection (as
        :meth:`drop_connection`) and the pending creations; the build record stays."""
        self.worker = None
        self.pending = []
        self.drop_connection()

    @classmethod
    def model_validate(cls, data: object) -> State:
        """A state from parsed JSON.

        Raises:
            msgspec.ValidationError: a field is missing, unknown or of the wrong type.
        """
        return msgspec.convert(data, cls)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]*)`$")


def _where(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(location, message)`` of a validation error: ``worker.id``, ``pending.0.kind``...

    msgspec says ``Object missing required field `id` - at `$.worker```; the state file's
    errors have always named the field itself (``worker.id``) and said what is wrong with it.
    """
    found = _AT.match(str(exc))
    message, path = (found["msg"], found["path"] or "") if found else (str(exc), "")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    field_error = _FIELD.match(message)
    if field_error:
        parts.append(field_error["name"])
        missing = field_error["what"] == "missing required"
        message = "Field required" if missing else "Extra inputs are not permitted"
    return ".".join(parts), message


class StateStore:
    """The state file at ``path`` and its lock.

    Example::

        store = StateStore(Path(".alpaca-md/state.json"))
        with store.transaction() as state:
            state.worker = WorkerRecord(id=worker_id, topics=[topic])

    Parameters:
        path: the JSON file; its directory is created on first write.
        lock_timeout: seconds to wait for another invocation to release the lock.
    """

    def __init__(self, path: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_timeout = lock_timeout
        self._held = False
        self._clear_pending = False
        self._baseline: dict[str, object] | None = None
        """What the file holds now, inside :meth:`transaction` (a :meth:`write` moves it)."""

    def __repr__(self) -> str:
        return f"StateStore({str(self.path)!r})"

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> State | None:
        """The current state, or ``None`` when there is no file.

        Raises:
            StateError: the file is unreadable, corrupt, or of an unknown version.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(
                f"{self.path}: cannot read the state file ({exc.strerror}).",
                hint="Check its permissions, or point --state at another file.",
            ) from exc
        return self._parse(raw)

    def _parse(self, raw: bytes) -> State:
        fix = (
            f"It was left untouched: move it away (mv {self.path} {self.path}.bak) if you no "
            "longer need what it names, or pass --state to use another file."
        )
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.path}: the state file is not valid JSON.", hint=fix) from exc
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: the state file is not a JSON object.", hint=fix)
        version = data.get("version")
        if version != STATE_VERSION:
            raise StateError(
                f"{self.path}: unknown state file version {version!r} "
                f"(this alpaca-md reads version {STATE_VERSION}).",
                hint="A newer alpaca-md may have written it. " + fix,
            )
        try:
            return State.model_validate(data)
        except msgspec.ValidationError as exc:
            loc, message = _where(exc)
            raise StateError(
                f"{self.path}: the state file is invalid at '{loc}': {message}.", hint=fix
            ) from None

    # -- locking and writing ------------------------------------------------------------------

    def write(self, state: State) -> None:
        """Write ``state`` now, inside :meth:`transaction`, and go on holding the lock.

        Why: "intent before side effect": a step records a pending entry durably before it
        creates anything, and the record of what it made right after, without letting another
        invocation in between.

        Raises:
            StateError: the write failed (the old file stays intact); called outside a
                transaction is a bug (RuntimeError).
        """
        if not self._held:
            raise RuntimeError("StateStore.write() outside transaction()")
        state.updated_at = utcnow()
        self._write(state)
        self._baseline = state.model_dump(mode="json")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            # A user error (read-only directory, a file where the directory should be), found
            # before any platform call, so nothing is left half done.
            raise StateError(
                f"{self.path}: cannot create the state file's directory or lock "
                f"({exc.strerror}: {exc.filename}).",
                hint="Check the directory's permissions, or point --state at a writable path.",
            ) from exc
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateError(
                            f"{self.path}: another alpaca-md holds the state lock "
                            f"({self.lock_path}).",
                            hint="Wait for it to finish, or pass --state to use another file.",
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        """Read (or start) the state under the lock; write it back if the block succeeds.

        An exception inside the block discards the changes. The write happens only when the
        state changed (a fresh, untouched state is not written), and bumps ``updated_at``.
        Calling :meth:`clear` inside the block removes the file on exit instead.

        Raises:
            StateError: corrupt/unknown-version file (left untouched), lock timeout, or the
                write failed (the old file stays intact).
        """
        with self._locked():
            self._held = True
            self._clear_pending = False
            try:
                current = self.read()
                state = current if current is not None else State()
                self._baseline = state.model_dump(mode="json")
                yield state
                if self._clear_pending:
                    self._unlink()
                    return
                if state.model_dump(mode="json") != self._baseline:
                    state.updated_at = utcnow()
                    self._write(state)
            finally:
                self._held = False
                self._clear_pending = False
                self._baseline = None

    def clear(self) -> bool:
        """Remove the state file; ``True`` if there was one.

        Inside :meth:`transaction` it only marks the file for removal when the block ends
        cleanly (the lock is already held), and returns whether the file exists now.
        """
        if self._held:
            self._clear_pending = True
            return self.path.exists()
        with self._locked():
            return self._unlink()

    def _unlink(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(self.path.parent)
        return True

    def _write(self, state: State) -> None:
        """Replace the file atomically: temp file in the same dir, fsync, rename, fsync dir."""
        data = (state.model_dump_json(indent=2) + "\n").encode()
        directory = self.path.parent
        tmp: Path | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(
                dir=directory, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            if isinstance(exc, OSError):
                raise StateError(
                    f"{self.path}: cannot write the state file ({exc.strerror}); "
                    "the previous version is intact.",
                    hint="Check free space and permissions.",
                ) from exc
            raise
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX needs the directory fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


__all__ = [
    "STATE_VERSION",
    "BuildRecord",
    "ConnectionRecord",
    "PendingRecord",
    "State",
    "StateStore",
    "WorkerRecord",
    "utcnow",
]
