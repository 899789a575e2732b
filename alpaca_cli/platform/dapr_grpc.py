"""The Dapr sidecar's pub/sub over its gRPC API, without the SDK's client package.

Why not ``dapr.clients.DaprClient``: importing ``dapr.clients`` loads the SDK's HTTP actor and
invocation clients, and with them ``aiohttp`` (~0.13 s of CPU, a quarter of
``alpaca-md --json list``'s start), for two calls we never make over HTTP. What we use of the
SDK is what it builds on: the generated stubs (``dapr.proto``), its settings (``dapr.conf``),
its endpoint parser and its ``SubscriptionMessage`` type. The rest is the SDK's own behaviour,
kept as it is:

* **Health.** :func:`wait_for_sidecar` is ``DaprHealth.wait_for_sidecar``: GET
  ``/v1.0/healthz/outbound`` until 2xx or ``DAPR_HEALTH_TIMEOUT``, one probe a second, each
  failure said in a ``Health check on <url> failed: <reason>`` line (to our log, never stdout),
  then :class:`TimeoutError`.
* **Channel.** ``DAPR_GRPC_ENDPOINT`` or host:port through the SDK's ``GrpcEndpoint`` (TLS when
  it says so), the SDK's user agent, ``DAPR_GRPC_MAX_INBOUND_MESSAGE_SIZE_BYTES``, the
  ``dapr-api-token`` metadata on every call and ``DAPR_API_TIMEOUT_SECONDS`` on unary calls.
* **Streaming subscription.** :class:`StreamingSubscription` is the SDK's ``Subscription``: an
  initial request, then events read one by one and acknowledged on the same stream; a stream
  that fails with UNAVAILABLE/UNKNOWN/INTERNAL or is ended by the sidecar is reopened (after a
  health wait) up to :data:`MAX_RECONNECT_ATTEMPTS` times per read, with a jittered backoff.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import grpc
from dapr.conf import settings
from dapr.conf.helpers import GrpcEndpoint
from dapr.proto import api_service_v1, api_v1, appcallback_v1
from dapr.version import __version__ as sdk_version
from google.protobuf.json_format import MessageToDict

__all__ = [
    "MAX_RECONNECT_ATTEMPTS",
    "SidecarClient",
    "StreamInactive",
    "StreamingSubscription",
    "wait_for_sidecar",
]

USER_AGENT: Final = f"dapr-sdk-python/{sdk_version}"
"""What the SDK says it is (HTTP ``User-Agent`` and gRPC primary user agent)."""

MAX_RECONNECT_ATTEMPTS: Final = 5
RECONNECT_BACKOFF_INITIAL_SECONDS: Final = 0.2
RECONNECT_BACKOFF_MAX_SECONDS: Final = 5.0
_TRANSIENT: Final = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
_MIN_PROBE_TIMEOUT: Final = 0.5

Log = Callable[[str], None]


class StreamInactive(Exception):
    """The subscription was closed (or cancelled): no more events."""


class _Transient(Exception):
    """The stream failed in a way a reconnect can fix."""


def _api_url() -> str:
    if settings.DAPR_HTTP_ENDPOINT:
        return f"{settings.DAPR_HTTP_ENDPOINT}/{settings.DAPR_API_VERSION}"
    return (
        f"http://{settings.DAPR_RUNTIME_HOST}:{settings.DAPR_HTTP_PORT}/{settings.DAPR_API_VERSION}"
    )


def wait_for_sidecar(log: Log | None = None) -> None:
    """Wait until the sidecar's outbound health answers 2xx (``dapr.conf.settings`` say where
    and for how long), as the SDK's ``DaprHealth.wait_for_sidecar`` does.

    Raises:
        TimeoutError: no healthy answer within ``DAPR_HEALTH_TIMEOUT`` seconds.
    """
    url = f"{_api_url()}/healthz/outbound"
    headers = {"User-Agent": USER_AGENT}
    if settings.DAPR_API_TOKEN is not None:
        headers["dapr-api-token"] = settings.DAPR_API_TOKEN
    timeout = float(settings.DAPR_HEALTH_TIMEOUT)
    start = time.monotonic()
    while True:
        try:
            request = urllib.request.Request(url, headers=headers)
            probe = max(start + timeout - time.monotonic(), _MIN_PROBE_TIMEOUT)
            with urllib.request.urlopen(request, timeout=probe) as response:
                if 200 <= response.status < 300:
                    return
        except urllib.error.URLError as exc:
            _say(log, f"Health check on {url} failed: {exc.reason}")
        except TimeoutError:
            _say(log, f"Health check on {url} failed: timed out")
        except Exception as exc:
            _say(log, f"Unexpected error during health check: {exc}")
        remaining = start + timeout - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"Dapr health check timed out, after {timeout}.")
        time.sleep(min(1.0, remaining))


def _say(log: Log | None, line: str) -> None:
    if log is not None:
        log("dapr: " + line)


class SidecarClient:
    """One gRPC channel to the sidecar: publish, and open streaming subscriptions.

    Construction waits for the sidecar's health first (:func:`wait_for_sidecar`), like
    ``DaprClient()``.

    Raises:
        TimeoutError: the sidecar did not become healthy in time.
        ValueError: a malformed ``address`` (``DAPR_GRPC_ENDPOINT``).
    """

    def __init__(self, address: str, *, log: Log | None = None) -> None:
        self._log = log
        wait_for_sidecar(log)
        options: list[tuple[str, Any]] = [("grpc.primary_user_agent", USER_AGENT)]
        if settings.DAPR_GRPC_MAX_INBOUND_MESSAGE_SIZE_BYTES:
            options.append(
                (
                    "grpc.max_receive_message_length",
                    settings.DAPR_GRPC_MAX_INBOUND_MESSAGE_SIZE_BYTES,
                )
            )
        endpoint = GrpcEndpoint(address)
        if endpoint.tls:
            self._channel = grpc.secure_channel(
                endpoint.endpoint, grpc.ssl_channel_credentials(), options=options
            )
        else:
            self._channel = grpc.insecure_channel(endpoint.endpoint, options=options)
        self._stub = api_service_v1.DaprStub(self._channel)  # type: ignore[no-untyped-call]
        token = settings.DAPR_API_TOKEN
        self.metadata: Sequence[tuple[str, str]] = (("dapr-api-token", token),) if token else ()
        timeout = settings.DAPR_API_TIMEOUT_SECONDS
        self._unary_timeout = float(timeout) if timeout is not None else None

    def publish_event(
        self, *, pubsub_name: str, topic_name: str, data: bytes, data_content_type: str
    ) -> None:
        """``PublishEvent`` (raises :class:`grpc.RpcError`)."""
        request = api_v1.PublishEventRequest(
            pubsub_name=pubsub_name,
            topic=topic_name,
            data=data,
            data_content_type=data_content_type,
        )
        self._stub.PublishEvent(request, metadata=self.metadata, timeout=self._unary_timeout)

    def subscribe(self, *, pubsub_name: str, topic: str) -> StreamingSubscription:
        """Open a streaming subscription (raises :class:`grpc.RpcError` and what
        :meth:`StreamingSubscription.start` raises)."""
        sub = StreamingSubscription(self, pubsub_name, topic)
        sub.start()
        return sub

    def close(self) -> None:
        self._channel.close()

    def open_stream(self, requests: Iterator[Any]) -> Any:
        return self._stub.SubscribeTopicEventsAlpha1(requests, metadata=self.metadata)

    def wait_for_sidecar(self) -> None:
        wait_for_sidecar(self._log)


class StreamingSubscription:
    """One topic through ``SubscribeTopicEventsAlpha1`` (the SDK's ``Subscription``, see the
    module docstring): :meth:`next_message`, :meth:`respond_success`, :meth:`close`."""

    def __init__(self, client: SidecarClient, pubsub_name: str, topic: str) -> None:
        self._client = client
        self._pubsub_name = pubsub_name
        self._topic = topic
        self._stream: Any = None
        self._send: queue.Queue[Any] = queue.Queue()
        self._active = False
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the stream and read the sidecar's initial answer.

        Raises:
            StreamInactive: closed meanwhile.
            _Transient: the sidecar is not reachable right now (reconnectable).
            grpc.RpcError: any other refusal (e.g. INVALID_ARGUMENT for an unknown pubsub).
        """
        send: queue.Queue[Any] = queue.Queue()
        initial = api_v1.SubscribeTopicEventsRequestAlpha1(
            initial_request=api_v1.SubscribeTopicEventsRequestInitialAlpha1(
                pubsub_name=self._pubsub_name, topic=self._topic
            )
        )

        def requests() -> Iterator[Any]:
            yield initial
            while self._is_active():
                item = send.get()
                if item is None:
                    return
                yield item

        with self._lock:
            if self._closed.is_set():
                raise StreamInactive("Stream is not active")
            self._send = send
            self._active = True
        stream = self._client.open_stream(requests())
        with self._lock:
            self._stream = stream
            closed = self._closed.is_set()
        if closed:
            send.put(None)
            stream.cancel()
            raise StreamInactive("Stream is not active")
        try:
            next(stream)  # the initial response
        except Exception as exc:
            self._set_inactive()
            send.put(None)
            if self._closed.is_set():
                raise StreamInactive("Stream is not active") from exc
            if isinstance(exc, grpc.RpcError) and exc.code() in _TRANSIENT:
                raise _Transient(f"{exc.details()} Status Code: {exc.code()}") from exc
            raise

    def next_message(self) -> tuple[Any, queue.Queue[Any]]:
        """The next event (a ``TopicEventRequest``) and the queue its acknowledgement goes to.

        Raises:
            StreamInactive: closed, or cancelled.
            Exception: the stream still fails after the reconnects, or any other error.
        """
        attempts = 0
        error = ""
        while True:
            try:
                if attempts > 0:
                    self._reconnect()
                return self._read()
            except _Transient as exc:
                error = str(exc)
            if attempts >= MAX_RECONNECT_ATTEMPTS:
                raise ConnectionError(
                    f"Subscription stream still failing after {attempts} reconnect attempts: "
                    f"{error}"
                )
            if attempts > 0 and self._closed.wait(_backoff(attempts)):
                raise StreamInactive("Stream is not active")
            attempts += 1

    def _read(self) -> tuple[Any, queue.Queue[Any]]:
        if not self._is_active() or self._stream is None:
            raise StreamInactive("Stream is not active")
        send = self._send
        try:
            message = next(self._stream)
        except StopIteration as exc:
            raise _Transient("Stream ended by the server") from exc
        except grpc.RpcError as exc:
            code = exc.code()
            if code in _TRANSIENT:
                raise _Transient(f"{exc.details()} Status Code: {code}") from exc
            if code == grpc.StatusCode.CANCELLED:
                raise StreamInactive("Stream has been cancelled") from exc
            raise
        return message.event_message, send

    def _reconnect(self) -> None:
        self._close_stream()
        self._client.wait_for_sidecar()
        self.start()

    def respond_success(self, event_id: str, origin: queue.Queue[Any]) -> None:
        """Acknowledge ``event_id`` on the stream it came from (dropped if that was replaced)."""
        processed = api_v1.SubscribeTopicEventsRequestProcessedAlpha1(
            id=event_id,
            status=appcallback_v1.TopicEventResponse(
                status=appcallback_v1.TopicEventResponse.SUCCESS
            ),
        )
        if self._is_active() and origin is self._send:
            origin.put(api_v1.SubscribeTopicEventsRequestAlpha1(event_processed=processed))

    def close(self) -> None:
        with self._lock:
            self._closed.set()
        self._close_stream()

    def _close_stream(self) -> None:
        self._set_inactive()
        self._send.put(None)
        if self._stream is not None:
            with contextlib.suppress(Exception):  # already dead
                self._stream.cancel()

    def _set_inactive(self) -> None:
        with self._lock:
            self._active = False

    def _is_active(self) -> bool:
        with self._lock:
            return self._active


def _backoff(attempt: int) -> float:
    capped = min(
        RECONNECT_BACKOFF_MAX_SECONDS, RECONNECT_BACKOFF_INITIAL_SECONDS * 2 ** (attempt - 1)
    )
    return random.uniform(capped / 2, capped)


def extensions_of(event: Any) -> dict[str, Any]:
    """An event's CloudEvent extensions as a dict (what the SDK's ``SubscriptionMessage``
    gives), or ``{}`` when they cannot be read."""
    try:
        return dict(MessageToDict(event.extensions))
    except Exception:
        return {}
