"""The state file: versioned schema, atomic writes, the lock, and untouched corrupt files."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alpaca_cli.errors import ExitCode, StateError
from alpaca_cli.state import ConnectionRecord, State, StateStore, WorkerRecord


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / ".alpaca-md" / "state.json", lock_timeout=5)


def test_a_missing_file_reads_as_none_and_an_untouched_transaction_writes_nothing(
    store: StateStore,
) -> None:
    assert store.read() is None
    with store.transaction() as state:
        assert state.worker is None
    assert not store.path.exists()


def test_round_trip_through_a_transaction(store: StateStore) -> None:
    with store.transaction() as state:
        state.worker = WorkerRecord(id="w1", topics=["cmd"], package_sha256="ab")
        state.connection = ConnectionRecord(id="c1", url="ws://x/y")
        state.subscriptions["orderbooks"] = ["BTC/USD"]
        run_id = state.run_id
    loaded = store.read()
    assert loaded is not None
    assert loaded.run_id == run_id
    assert loaded.worker is not None and loaded.worker.id == "w1"
    assert loaded.subscriptions == {"orderbooks": ["BTC/USD"]}
    assert json.loads(store.path.read_text())["version"] == 1


def test_an_exception_in_the_block_discards_the_changes(store: StateStore) -> None:
    with store.transaction() as state:
        state.publish_topic = "a"
    with pytest.raises(RuntimeError), store.transaction() as state:
        state.publish_topic = "b"
        raise RuntimeError("boom")
    loaded = store.read()
    assert loaded is not None and loaded.publish_topic == "a"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(b"{not json", "not valid JSON", id="garbage"),
        pytest.param(b"[1, 2]", "not a JSON object", id="array"),
        pytest.param(b'{"version": 2}', "unknown state file version 2", id="future-version"),
        pytest.param(b'{"run_id": "x"}', "unknown state file version None", id="no-version"),
        pytest.param(b'{"version": 1, "worker": {"topics": []}}', "worker.id", id="invalid"),
        pytest.param(b'{"version": 1, "api_key": "s3cr3t"}', "api_key", id="unknown-field"),
    ],
)
def test_corrupt_or_unknown_files_raise_and_stay_untouched(
    store: StateStore, content: bytes, needle: str
) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(StateError) as info:
        store.read()
    assert needle in str(info.value)
    assert str(store.path) in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    with pytest.raises(StateError), store.transaction() as state:
        state.publish_topic = "x"  # pragma: no cover - never reached
    assert store.path.read_bytes() == content


def test_clear_inside_a_transaction_removes_the_file_on_exit(store: StateStore) -> None:
    with store.transaction() as state:
        state.publish_topic = "t"
    with store.transaction() as state:
        state.publish_topic = "u"
        assert store.clear() is True
        assert store.path.exists()
    assert not store.path.exists()
    assert store.clear() is False


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.transaction() as state:
        state.publish_topic = "old"
    before = store.path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StateError, match="previous version is intact"), store.transaction() as s:
        s.publish_topic = "new"
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json", "state.json.lock"]


def test_a_state_path_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    store = StateStore(tmp_path / "afile" / "state.json", lock_timeout=1)
    match = "cannot create the state file's directory or lock"
    with pytest.raises(StateError, match=match), store.transaction() as state:
        state.publish_topic = "never"


def test_a_process_killed_mid_write_leaves_the_old_file_intact(store: StateStore) -> None:
    with store.transaction() as state:
        state.publish_topic = "old"
    before = store.path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from alpaca_cli.state import StateStore
        real_fsync = os.fsync
        def die(fd):
            os._exit(9)   # the temp file is written but not yet renamed
        os.fsync = die
        store = StateStore(Path({str(store.path)!r}))
        with store.transaction() as state:
            state.publish_topic = "new" * 1000
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    assert store.path.read_bytes() == before
    loaded = store.read()
    assert loaded is not None and loaded.publish_topic == "old"


def _append_many(path: str, name: str, count: int) -> None:
    store = StateStore(Path(path), lock_timeout=60)
    for i in range(count):
        with store.transaction() as state:
            state.subscriptions.setdefault("trades", []).append(f"{name}-{i}")


def test_concurrent_writers_lose_no_update(store: StateStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_append_many, args=(str(store.path), f"p{n}", 15)) for n in range(3)
    ]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    loaded = store.read()
    assert loaded is not None
    assert sorted(loaded.subscriptions["trades"]) == sorted(
        f"p{n}-{i}" for n in range(3) for i in range(15)
    )


def test_a_held_lock_times_out_with_a_clear_error(store: StateStore) -> None:
    import fcntl

    store.path.parent.mkdir(parents=True)
    fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        quick = StateStore(store.path, lock_timeout=0.1)
        with (
            pytest.raises(StateError, match="another alpaca-md holds the state lock"),
            quick.transaction(),
        ):
            pass  # pragma: no cover
    finally:
        os.close(fd)


def test_the_schema_has_no_place_for_a_secret() -> None:
    fields = set(State.__struct_fields__) | set(WorkerRecord.__struct_fields__)
    assert not {f for f in fields if "secret" in f or "key" in f or "token" in f}
