"""``alpaca-md deploy``: create and start the controller worker through the gateway.

The step (:func:`deploy_worker`) reads and locks the state file first (check before acting),
records a pending entry with a fresh intent id (intent before side effect), then sends
CreateWorker (package as base64 content, or a code-source URL), MIME
``application/x-dotnet-dll``, input topic = the controller's command topic, and tags that mark
the worker as ours and name the intent (:mod:`alpaca_cli.steps.tags`), so ``teardown`` and
``teardown --orphans`` find it after any crash. Workers carrying our intent tag beyond the one
answered (the gateway retried CreateWorker) are deleted. The worker is recorded *before*
StartWorker (always sent: a new worker may already run), so an interrupt during Start leaves a
recorded worker; a record that cannot be written (full disk) deletes the worker again and says
so. The lock is held across the whole step, so two concurrent deploys cannot both create a
worker. A worker that would not start is deleted again; if even that fails, it stays recorded
for ``teardown``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from alpaca_cli.steps.tags import (
    TAG_CREATED_BY,
    TAG_CREATED_BY_VALUE,
    TAG_HOST,
    TAG_INTENT,
    TAG_RUN_ID,
    TAG_STATE,
    is_ours,
    worker_tags,
)

T = TypeVar("T")

__all__ = [
    "TAG_CREATED_BY",
    "TAG_CREATED_BY_VALUE",
    "TAG_HOST",
    "TAG_RUN_ID",
    "TAG_STATE",
    "DeployResult",
    "deploy_worker",
    "is_ours",
    "once_more",
    "remove_worker",
    "worker_tags",
]

if TYPE_CHECKING:
    from alpaca_cli.errors import AlpacaMdError, StateError
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.runtime import Runtime


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The worker ``deploy`` created and started."""

    worker_id: str
    topics: list[str]
    topic_field: str
    package_path: str | None
    package_url: str | None
    package_sha256: str | None
    run_id: str
    replaced_worker_id: str | None = None
    extras_removed: tuple[str, ...] = ()
    """Duplicates of our CreateWorker (the gateway retried it) found by tag and deleted."""


def once_more(call: Callable[[], T]) -> T:
    """``call()``, and once more if the gateway could not be reached (a transport error).

    Only for idempotent calls (Stop, Delete, Disconnect, List): issue 11's "teardown tries
    everything" (hole 14). A refusal in-band is an answer and is not retried.
    """
    from alpaca_cli.errors import GatewayUnreachable

    try:
        return call()
    except GatewayUnreachable:
        return call()


def remove_worker(gateway: GatewayClient, worker_id: str) -> bool:
    """Stop, then delete a worker; ``False`` when it was already gone (NOT_FOUND).

    The platform's Delete does not need a Stop first, so a Stop that fails for any reason
    (refused, 5xx, no answer) never prevents the Delete (hole 14); each is tried once more on
    a transport error, and only the Delete's failure is raised.
    """
    from alpaca_cli.errors import AlpacaMdError, CommandRefused

    try:
        once_more(lambda: gateway.stop_worker(worker_id))
    except CommandRefused as exc:
        if exc.status == "NOT_FOUND":
            return False
    except AlpacaMdError:
        pass  # Delete does not need it
    try:
        once_more(lambda: gateway.delete_worker(worker_id))
    except CommandRefused as exc:
        if exc.status == "NOT_FOUND":
            return False
        raise
    return True


def deploy_worker(
    rt: Runtime,
    *,
    package: Path | None = None,
    url: str | None = None,
    replace: bool = False,
    on_created: Callable[[str], None] | None = None,
) -> DeployResult:
    """Create and start the controller worker, recording it in the state file.

    Args:
        package: a worker.zip to send as base64 content; default the package ``build`` made.
        url: a code-source URL instead of a package (e.g. ``embedded://websocketmanagercontroller``
            on the embedded platform).
        replace: when the state names a worker that still exists, remove it first instead of
            refusing.
        on_created: called with the worker id as soon as it exists, before it is recorded
            (``run`` owns what it created in memory, whatever happens to the state file).

    Raises:
        UsageError: both/neither package and URL, unreadable package, or a live worker exists.
        GatewayUnreachable / GatewayUnauthorized / CommandRefused: from the gateway.
        StateError: the state file is corrupt or locked.
    """
    from alpaca_cli.errors import AlpacaMdError, CommandRefused, StateError, UsageError
    from alpaca_cli.state import PendingRecord, WorkerRecord
    from alpaca_cli.steps.build import sha256_of
    from alpaca_cli.steps.tags import new_intent

    if package is not None and url is not None:
        raise UsageError("Give either --package or --url, not both.")
    gateway = rt.gateway()
    topics = [rt.config.command_topic]
    failure: AlpacaMdError | None = None
    with rt.store.transaction() as state:
        content: bytes | None = None
        digest: str | None = None
        package_path: str | None = None
        if url is None:
            if package is None:
                if state.build is None:
                    raise UsageError(
                        "Nothing to deploy: no --package, no --url, and no built package "
                        f"in {rt.store.path}.",
                        hint="Run `alpaca-md build`, or pass --package worker.zip or --url URL.",
                    )
                package = Path(state.build.package_path)
            try:
                content = package.read_bytes()
            except OSError as exc:
                raise UsageError(
                    f"Cannot read the package {package} ({exc.strerror}).",
                    hint="Run `alpaca-md build` again, or pass --package with an existing file.",
                ) from exc
            if not content:
                raise UsageError(f"The package {package} is empty.", hint="Build it again.")
            digest = sha256_of(package)
            package_path = str(package)

        replaced: str | None = None
        if state.worker is not None:
            known = {w.id: w for w in gateway.list_workers()}
            old = known.get(state.worker.id)
            if old is not None and not replace:
                raise UsageError(
                    f"The state file {rt.store.path} already names worker {old.id} ({old.status}).",
                    hint="Run `alpaca-md teardown` first, or pass --replace to remove it "
                    "and deploy a new one.",
                )
            if old is not None:
                rt.progress(f"Removing worker {old.id} (--replace)")
                remove_worker(gateway, old.id)
                replaced = old.id
            else:
                rt.log(f"worker {state.worker.id} from the state file no longer exists")
            state.worker = None

        # Intent before side effect: the pending entry (and the tag naming it) is on disk
        # before CreateWorker, so a crash at any instant leaves a worker that is recorded or
        # findable by its tag. A full disk fails here, before anything exists.
        intent = new_intent()
        tags = worker_tags(state.run_id, rt.store.path, intent)
        pending = PendingRecord(kind="worker", intent=intent)
        state.pending.append(pending)
        existed = rt.store.path.exists()
        state.gateway_url = rt.config.api_url
        rt.store.write(state)

        source = f"package {package_path}" if package_path else f"URL {url}"
        rt.progress(f"Creating the controller worker from {source} on {rt.config.api_url}")
        found, topic_field, extras, error = _create(rt, gateway, topics, content, url, tags, intent)
        if found is None:
            # Nothing carries our tag: nothing was created, so nothing is pending either.
            state.pending = [p for p in state.pending if p.intent != intent]
            if not existed:
                rt.store.clear()
            assert error is not None
            failure = error
        else:
            created_id = found
            if on_created is not None:
                on_created(created_id)
            if topic_field != "topics":
                rt.log("this platform takes CreateWorker `topic` (older generation): used it")
            record = WorkerRecord(
                id=created_id,
                topics=topics,
                package_path=package_path,
                package_url=url,
                package_sha256=digest,
                topic_field="topic" if topic_field == "topic" else "topics",
            )
            state.worker = record
            state.pending = [p for p in state.pending if p.intent != intent]
            try:
                rt.store.write(state)
            except StateError as exc:
                # Undo what cannot be recorded (holes 5, 16): a worker nobody can find is worse
                # than a failed deploy.
                raise _unrecorded(gateway, created_id, exc) from exc
            try:
                # Always: a new worker may already be running (newest spec); Start is idempotent.
                gateway.start_worker(created_id)
            except AlpacaMdError as exc:
                failure = exc
                try:
                    gateway.delete_worker(created_id)
                    rt.progress(f"StartWorker failed; deleted worker {created_id} again")
                    state.worker = None
                except AlpacaMdError as cleanup:
                    if isinstance(cleanup, CommandRefused) and cleanup.status == "NOT_FOUND":
                        state.worker = None
                    else:
                        rt.warn(
                            f"worker {created_id} could not be started nor deleted; it is recorded "
                            "in the state file: `alpaca-md teardown` removes it"
                        )
        run_id = state.run_id
    if failure is not None:
        raise failure
    rt.progress(f"Worker {created_id} is running on topic {topics[0]}")
    return DeployResult(
        worker_id=created_id,
        topics=topics,
        topic_field=topic_field,
        package_path=package_path,
        package_url=url,
        package_sha256=digest,
        run_id=run_id,
        replaced_worker_id=replaced,
        extras_removed=extras,
    )


def _create(
    rt: Runtime,
    gateway: GatewayClient,
    topics: list[str],
    content: bytes | None,
    url: str | None,
    tags: dict[str, str],
    intent: str,
) -> tuple[str | None, str, tuple[str, ...], AlpacaMdError | None]:
    """CreateWorker, then: which worker is ours, and the duplicates deleted.

    The gateway retries backend calls (3 attempts), so a non-idempotent CreateWorker can run
    twice, answering either id, or an error although workers exist (issue 12). Whatever it
    answered, the workers carrying our intent tag are the truth: keep the answered one (or,
    after an error, the first one found) and delete the rest.

    Returns:
        (worker id, topic field, duplicates deleted, None); or (None, ..., the CreateWorker
        error) when no worker carries our tag: nothing was created.

    Raises:
        the CreateWorker error when even the look-up failed, with a hint at ``teardown`` (the
        pending entry stays, and ``teardown`` finds the worker by its tag).
    """
    from alpaca_cli.errors import AlpacaMdError

    answered: str | None = None
    topic_field = "topics"
    error: AlpacaMdError | None = None
    try:
        created = gateway.create_worker(topics=topics, content=content, url=url, tags=tags)
        answered, topic_field = created.id, created.topic_field
    except AlpacaMdError as exc:
        if _never_sent(exc):
            return None, topic_field, (), exc  # the gateway refused the connection itself
        error = exc
    try:
        ours = [w.id for w in gateway.list_workers(tags={TAG_INTENT: intent})]
    except AlpacaMdError as exc:
        if error is not None:
            error.hint = (
                f"{error.hint + ' ' if error.hint else ''}A worker may have been created "
                f"anyway (ListWorkers failed too: {exc}); `alpaca-md teardown` finds and "
                "removes it by its tag."
            )
            raise error from None
        rt.log(f"could not look for duplicate workers ({exc})")
        ours = []
    if answered is None:
        if not ours:
            return None, topic_field, (), error
        answered = ours[0]
        rt.warn(f"CreateWorker failed ({error}), but it had created worker {answered}: using it")
    extras = tuple(w for w in ours if w != answered)
    for extra in extras:
        try:
            remove_worker(gateway, extra)
            rt.warn(f"the gateway ran CreateWorker twice; deleted the duplicate worker {extra}")
        except AlpacaMdError as exc:
            rt.warn(
                f"the gateway ran CreateWorker twice and the duplicate worker {extra} could not "
                f"be deleted ({exc}): `alpaca-md teardown --orphans --yes` removes it"
            )
    return answered, topic_field, extras, None


def _never_sent(exc: BaseException) -> bool:
    """Whether a gateway call failed before its request could reach anything (connection
    refused, unknown host): then nothing can have been created."""
    import httpx

    return isinstance(exc.__cause__, httpx.ConnectError)


def _unrecorded(gateway: GatewayClient, worker_id: str, exc: StateError) -> StateError:
    """The error for a worker that exists but could not be recorded, after deleting it."""
    from alpaca_cli.steps.tags import undo_unrecorded

    return undo_unrecorded(
        exc,
        f"worker {worker_id}",
        lambda: remove_worker(gateway, worker_id),
        undone="deleted",
        finds="removes",
    )
