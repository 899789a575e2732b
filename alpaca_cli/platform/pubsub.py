"""Pub/sub through a Dapr sidecar: publish our own CloudEvents, consume topics by streaming.

A thin layer over the sidecar's gRPC API (``spec/dapr-pubsub.md``) that fixes what a CLI cannot
live with:

* **Start-up.** The gRPC stubs cost a tenth of a second to import, so they are imported here,
  inside :meth:`PubsubClient.connect`, never at module level; and the SDK's ``DaprClient`` is
  not used at all (:mod:`alpaca_cli.platform.dapr_grpc` says why and what it keeps of it).
* **No sidecar.** Every client build polls the sidecar's health endpoint for
  ``DAPR_HEALTH_TIMEOUT`` seconds (SDK default 60). We shorten that to
  :data:`DEFAULT_HEALTH_TIMEOUT` unless the user set it, and turn the SDK's ``TimeoutError``
  into :class:`~alpaca_cli.errors.SidecarUnreachable` with the URL and a hint.
* **Settings.** The SDK reads ``dapr.conf.settings`` when it is used; we assign our resolved
  values (flag > env > ``.env``) there before building the client, so a ``.env`` file counts.
* **stdout is data.** The health wait's diagnostics (``Health check on ... failed``) go to our
  log (``-vv``), never to stdout: :mod:`~alpaca_cli.platform.dapr_grpc` writes them there.
* **Errors.** ``grpc.RpcError`` becomes our tree: UNAUTHENTICATED ->
  :class:`~alpaca_cli.errors.CredentialsRefused`, INVALID_ARGUMENT (e.g. an unknown pub/sub
  name) -> :class:`~alpaca_cli.errors.UsageError` naming ``--pubsub``, UNAVAILABLE ->
  :class:`~alpaca_cli.errors.SidecarUnreachable`.
* **Timeouts.** A sync subscription blocks in ``next_message()`` with no timeout. A
  reader thread per subscription moves events into a bounded queue (:data:`QUEUE_SIZE`);
  :meth:`Subscription.get` waits on that queue with a timeout, so replies can time out and
  tails stop on ``--duration``. When the queue is full the reader blocks, which stops it reading
  the gRPC stream: HTTP/2 flow control then pushes back on the sidecar (nothing is dropped here).
  Events are acknowledged (``respond_success``) as soon as they are queued.

Example::

    with PubsubClient(config.dapr, pubsub="pubsub") as client:
        with client.subscribe("alpaca-ticks") as sub:
            event = sub.get(timeout=5.0)     # None on timeout
        client.publish("topic", {"command": "list"}, type="com.example.command")
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from alpaca_cli.closing import Closing
from alpaca_cli.errors import (
    GRPC_STATUS_EXIT,
    AlpacaMdError,
    CredentialsRefused,
    ExitCode,
    SidecarUnreachable,
    UsageError,
    grpc_status_error,
)
from alpaca_cli.platform.bus import QUEUE_SIZE, SOURCE, Event, QueuedSubscription, grpc_details

if TYPE_CHECKING:
    from alpaca_cli.config import Config, DaprSettings

__all__ = [
    "DEFAULT_HEALTH_TIMEOUT",
    "QUEUE_SIZE",
    "SOURCE",
    "Event",
    "PubsubClient",
    "Subscription",
    "open_pubsub",
]

DEFAULT_HEALTH_TIMEOUT: Final = 3.0
"""Seconds to wait for the sidecar when the user did not set ``DAPR_HEALTH_TIMEOUT``: long
enough for ``dapr run`` to bring up a sidecar started together with us, short enough for a
clear error when there is none."""

Log = Callable[[str], None]


def _sidecar_hint() -> str:
    return (
        "Start a Dapr sidecar with an app id of its own "
        "(dapr run --app-id alpaca-md-cli -- alpaca-md ...), or the embedded platform "
        "(alpaca-md dev up) and export the environment it prints."
    )


def _unreachable(settings: DaprSettings, detail: str) -> SidecarUnreachable:
    return SidecarUnreachable(
        f"the Dapr sidecar at {settings.http_url} (gRPC {settings.grpc_address}) "
        f"did not answer: {detail}.",
        url=settings.http_url,
        hint=_sidecar_hint(),
    )


def _grpc_error_of(exc: BaseException) -> Any | None:
    """The ``grpc.RpcError`` behind ``exc``, following causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "code", None)
        if callable(code):
            with contextlib.suppress(Exception):
                if code() is not None and hasattr(code(), "name"):
                    return current
        current = current.__cause__ or current.__context__
    return None


class PubsubClient(Closing):
    """A connection to one Dapr sidecar and one pub/sub component.

    Call order: :meth:`connect` (or let the first publish/subscribe do it), any number of
    :meth:`publish` / :meth:`subscribe`, then :meth:`close` (or use ``with``).

    Parameters:
        settings: where the sidecar is (ports, host, API token), already resolved.
        pubsub: the pub/sub component name (``--pubsub``).
        health_timeout: seconds to wait for the sidecar; default ``settings.health_timeout``
            (:func:`open_pubsub` picks :data:`DEFAULT_HEALTH_TIMEOUT` unless the user set one).
        log: where SDK diagnostics and ``-vv`` lines go (never stdout); default: dropped.
    """

    name = "dapr"

    def __init__(
        self,
        settings: DaprSettings,
        *,
        pubsub: str = "pubsub",
        health_timeout: float | None = None,
        log: Log | None = None,
    ) -> None:
        self.settings = settings
        self.pubsub = pubsub
        self.health_timeout = (
            health_timeout if health_timeout is not None else settings.health_timeout
        )
        self._log = log
        self._client: Any = None
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    def __repr__(self) -> str:
        return f"PubsubClient({self.settings.grpc_address!r}, pubsub={self.pubsub!r})"

    # -- connection -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Wait for the sidecar and open the gRPC channel (idempotent).

        Raises:
            SidecarUnreachable: the health endpoint did not answer 2xx in time.
        """
        with self._lock:
            if self._client is not None:
                return
            self._client = self._build_client()

    def _build_client(self) -> Any:
        started = time.monotonic()
        _configure_sdk(self.settings, self.health_timeout)
        from alpaca_cli.platform.dapr_grpc import SidecarClient

        try:
            client = SidecarClient(self.settings.grpc_address, log=self._log)
        except TimeoutError as exc:
            raise _unreachable(
                self.settings, f"no healthy answer within {self.health_timeout:g} s"
            ) from exc
        except Exception as exc:  # e.g. a malformed DAPR_GRPC_ENDPOINT
            raise _unreachable(self.settings, f"{type(exc).__name__}: {exc}") from exc
        self.log(
            f"dapr sidecar {self.settings.grpc_address} ready in {time.monotonic() - started:.2f} s"
        )
        return client

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def close(self) -> None:
        """Close every open subscription, then the channel. Idempotent."""
        for sub in list(self._subscriptions):
            sub.close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _sdk(self) -> Any:
        self.connect()
        return self._client

    # -- errors -----------------------------------------------------------------------------------

    def map_error(self, exc: BaseException, *, action: str) -> AlpacaMdError:
        """Translate an SDK/gRPC error raised while doing ``action`` into our tree."""
        if isinstance(exc, AlpacaMdError):
            return exc
        rpc = _grpc_error_of(exc)
        if rpc is None:
            return _unreachable(self.settings, f"{action} failed: {type(exc).__name__}: {exc}")
        name = rpc.code().name
        details = grpc_details(rpc)
        if name == "UNAUTHENTICATED":
            return CredentialsRefused(
                f"the Dapr sidecar at {self.settings.grpc_address} refused {action}: {details}.",
                hint="Set DAPR_API_TOKEN to the sidecar's API token.",
            )
        if name == "INVALID_ARGUMENT":
            return UsageError(
                f"the Dapr sidecar refused {action}: {details}.",
                hint=f"Check --pubsub (now {self.pubsub!r}): it must name a pub/sub "
                "component of the sidecar; and check the topic name.",
            )
        if GRPC_STATUS_EXIT.get(name) == ExitCode.UNREACHABLE:
            return _unreachable(self.settings, f"{action} failed ({name}: {details})")
        return grpc_status_error(name, f"the Dapr sidecar refused {action}: {name}: {details}.")

    # -- publishing -------------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any] | bytes,
        *,
        type: str,
        id: str | None = None,
        source: str = SOURCE,
        extensions: Mapping[str, str] | None = None,
        data_content_type: str = "application/json",
    ) -> str:
        """Publish one CloudEvent of our own making (``application/cloudevents+json``).

        Passing the whole CloudEvent lets us choose ``id``, ``type``, ``source`` and extension
        attributes such as ``correlationid``; the sidecar fills in what is missing. ``data`` is
        a JSON object, or bytes sent as ``data_base64``. The data is never logged: a
        ``send_raw`` command carries the Alpaca secret.

        Returns:
            The event id.

        Raises:
            SidecarUnreachable, CredentialsRefused, UsageError: see :meth:`map_error`.
        """
        event_id = id or uuid.uuid4().hex
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type,
            "datacontenttype": data_content_type,
        }
        if extensions:
            event.update(extensions)
        if isinstance(data, bytes):
            import base64

            event["data_base64"] = base64.b64encode(data).decode("ascii")
        else:
            event["data"] = dict(data)
        body = orjson.dumps(event)
        client = self._sdk()
        try:
            client.publish_event(
                pubsub_name=self.pubsub,
                topic_name=topic,
                data=body,
                data_content_type="application/cloudevents+json",
            )
        except Exception as exc:
            raise self.map_error(exc, action=f"publishing to topic {topic!r}") from exc
        self.log(f"published {type} id={event_id} to {self.pubsub}/{topic} ({len(body)} bytes)")
        return event_id

    # -- subscribing ------------------------------------------------------------------------------

    def subscribe(self, topic: str, *, queue_size: int = QUEUE_SIZE) -> Subscription:
        """Open a streaming subscription; it receives what is published after this returns.

        Raises:
            SidecarUnreachable, CredentialsRefused, UsageError: see :meth:`map_error`.
        """
        client = self._sdk()
        try:
            sdk_sub = client.subscribe(pubsub_name=self.pubsub, topic=topic)
        except Exception as exc:
            raise self.map_error(exc, action=f"subscribing to topic {topic!r}") from exc
        sub = Subscription(self, topic, sdk_sub, queue_size=queue_size)
        self._subscriptions.add(sub)
        self.log(f"subscribed to {self.pubsub}/{topic}")
        return sub

    def _forget(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)


class Subscription(QueuedSubscription):
    """A topic consumed through the sidecar's streaming subscription (``get``/iteration);
    each event is acknowledged (``respond_success``) once it is queued."""

    def __init__(
        self, client: PubsubClient, topic: str, sdk_sub: Any, *, queue_size: int = QUEUE_SIZE
    ) -> None:
        super().__init__(topic, queue_size=queue_size)
        self._client = client
        self._sdk_sub = sdk_sub
        self._start_reader(f"pubsub-{topic}")

    def __repr__(self) -> str:
        return f"Subscription(topic={self.topic!r})"

    def _read(self) -> None:
        from alpaca_cli.platform.dapr_grpc import extensions_of

        sdk_sub = self._sdk_sub
        closed = self._closed
        try:
            while not closed.is_set():
                msg, origin = sdk_sub.next_message()
                self._put(
                    Event(
                        msg.id,
                        msg.source,
                        msg.type,
                        msg.topic,
                        msg.data_content_type,
                        msg.data,
                        extensions_of(msg),
                        time.time_ns(),
                    )
                )
                if not closed.is_set():
                    sdk_sub.respond_success(msg.id, origin)
        except Exception as exc:
            if not closed.is_set():
                self._fail(self._client.map_error(exc, action=f"reading topic {self.topic!r}"))
        finally:
            self._end()

    def _stop_reading(self) -> None:
        self._sdk_sub.close()
        self._client._forget(self)


_configure_lock = threading.Lock()


def _configure_sdk(settings: DaprSettings, health_timeout: float) -> None:
    """Point the SDK's settings (which :mod:`.dapr_grpc` reads) at our resolved values."""
    from dapr.conf import settings as sdk

    with _configure_lock:
        values: dict[str, Any] = {
            "DAPR_RUNTIME_HOST": settings.runtime_host,
            "DAPR_HTTP_PORT": settings.http_port,
            "DAPR_GRPC_PORT": settings.grpc_port,
            "DAPR_GRPC_ENDPOINT": settings.grpc_endpoint,
            "DAPR_HTTP_ENDPOINT": settings.http_endpoint,
            "DAPR_API_TOKEN": (
                settings.api_token.get_secret_value() if settings.api_token else None
            ),
            "DAPR_HEALTH_TIMEOUT": health_timeout,
        }
        for name, value in values.items():
            setattr(sdk, name, value)


def open_pubsub(config: Config, *, log: Log | None = None) -> PubsubClient:
    """A :class:`PubsubClient` for a resolved configuration (not yet connected).

    It waits :data:`DEFAULT_HEALTH_TIMEOUT` for the sidecar unless ``DAPR_HEALTH_TIMEOUT`` was
    set in some layer (``config.sources`` says so; its value may well be the SDK's own 60).
    """
    health_timeout = (
        config.dapr.health_timeout
        if "dapr.health_timeout" in config.sources
        else DEFAULT_HEALTH_TIMEOUT
    )
    return PubsubClient(config.dapr, pubsub=config.pubsub, health_timeout=health_timeout, log=log)
