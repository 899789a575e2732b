"""``alpaca-md deploy``: create and start the controller worker through the gateway.

The step (:func:`deploy_worker`) sends CreateWorker (package as base64 content, or a code-source
URL), MIME ``application/x-dotnet-dll``, input topic = the controller's command topic, and tags
that mark the worker as ours (so ``teardown --orphans`` can find it after a lost state file);
then StartWorker. The state lock is held across the whole step, so two concurrent deploys cannot
both create a worker. A worker that was created but would not start is deleted again, so no
orphan is left behind; if even that fails, it is recorded in the state for ``teardown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from alpaca_cli.platform.gateway import GatewayClient
    from alpaca_cli.runtime import Runtime

TAG_CREATED_BY: Final = "created-by"
TAG_CREATED_BY_VALUE: Final = "alpaca-md"
TAG_RUN_ID: Final = "alpaca-md-run-id"
TAG_HOST: Final = "alpaca-md-host"
TAG_STATE: Final = "alpaca-md-state"


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


def worker_tags(run_id: str, state_path: Path) -> dict[str, str]:
    """Tags that make a worker recognisable as ours, and traceable to its state file."""
    import socket

    return {
        TAG_CREATED_BY: TAG_CREATED_BY_VALUE,
        TAG_RUN_ID: run_id,
        TAG_HOST: socket.gethostname()[:1024],
        TAG_STATE: str(state_path)[:1024],
    }


def is_ours(tags: dict[str, str] | object) -> bool:
    """Whether a worker's tags say alpaca-md made it."""
    return isinstance(tags, dict) and tags.get(TAG_CREATED_BY) == TAG_CREATED_BY_VALUE


def remove_worker(gateway: GatewayClient, worker_id: str) -> bool:
    """Stop, then delete a worker; ``False`` when it was already gone (NOT_FOUND).

    The platform's Delete does not need a Stop first, so a Stop that fails for another reason
    does not prevent the Delete; only the Delete's failure is raised.
    """
    from alpaca_cli.errors import CommandRefused

    try:
        gateway.stop_worker(worker_id)
    except CommandRefused as exc:
        if exc.status == "NOT_FOUND":
            return False
    try:
        gateway.delete_worker(worker_id)
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
) -> DeployResult:
    """Create and start the controller worker, recording it in the state file.

    Args:
        package: a worker.zip to send as base64 content; default the package ``build`` made.
        url: a code-source URL instead of a package (e.g. ``embedded://websocketmanagercontroller``
            on the embedded platform).
        replace: when the state names a worker that still exists, remove it first instead of
            refusing.

    Raises:
        UsageError: both/neither package and URL, unreadable package, or a live worker exists.
        GatewayUnreachable / GatewayUnauthorized / CommandRefused: from the gateway.
        StateError: the state file is corrupt or locked.
    """
    from alpaca_cli.errors import AlpacaMdError, CommandRefused, UsageError
    from alpaca_cli.state import WorkerRecord
    from alpaca_cli.steps.build import sha256_of

    if package is not None and url is not None:
        raise UsageError("Give either --package or --url, not both.")
    gateway = rt.gateway()
    topics = [rt.config.command_topic]
    failure: AlpacaMdError | None = None
    interrupted = False
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

        source = f"package {package_path}" if package_path else f"URL {url}"
        rt.progress(f"Creating the controller worker from {source} on {rt.config.api_url}")
        created = gateway.create_worker(
            topics=topics,
            content=content,
            url=url,
            tags=worker_tags(state.run_id, rt.store.path),
        )
        if created.topic_field != "topics":
            rt.log("this platform takes CreateWorker `topic` (older generation): used it")
        record = WorkerRecord(
            id=created.id,
            topics=topics,
            package_path=package_path,
            package_url=url,
            package_sha256=digest,
            topic_field="topic" if created.topic_field == "topic" else "topics",
        )
        state.gateway_url = rt.config.api_url
        try:
            gateway.start_worker(created.id)
        except KeyboardInterrupt:
            # Ctrl+C/SIGTERM after CreateWorker: an exception would discard the transaction and
            # forget a worker that exists; record it (teardown removes it) and re-raise below.
            state.worker = record
            interrupted = True
        except AlpacaMdError as exc:
            failure = exc
            try:
                gateway.delete_worker(created.id)
                rt.progress(f"StartWorker failed; deleted worker {created.id} again")
            except CommandRefused as cleanup:
                if cleanup.status != "NOT_FOUND":
                    state.worker = record
                    rt.warn(
                        f"worker {created.id} could not be started nor deleted; it is recorded "
                        "in the state file: `alpaca-md teardown` removes it"
                    )
            except AlpacaMdError:
                state.worker = record
                rt.warn(
                    f"worker {created.id} could not be started nor deleted; it is recorded in "
                    "the state file: `alpaca-md teardown` removes it"
                )
        else:
            state.worker = record
        run_id = state.run_id
    if interrupted:
        raise KeyboardInterrupt
    if failure is not None:
        raise failure
    rt.progress(f"Worker {created.id} is running on topic {topics[0]}")
    return DeployResult(
        worker_id=created.id,
        topics=topics,
        topic_field=created.topic_field,
        package_path=package_path,
        package_url=url,
        package_sha256=digest,
        run_id=run_id,
        replaced_worker_id=replaced,
    )
