"""HTTP client of the virtufin API gateway: ``invoke-json``, ``/health`` and discovery.

It cannot tell the real gateway from the embedded one, and every httpx error leaves it translated
into :mod:`alpaca_cli.errors` (``raise ... from``), so no command ever sees a raw httpx error:

- connection refused, DNS failure, timeout, HTTP 5xx  -> :class:`GatewayUnreachable` (exit 3)
- HTTP 401 / 403                                       -> :class:`GatewayUnauthorized` (exit 4)
- ``success: false`` in the body (gRPC status + message) -> :class:`CommandRefused` (exit 5)

Example::

    with GatewayClient("http://localhost:5001", api_key=None) as gw:
        worker = gw.create_worker(topics=["command.websocketmanagercontroller"], url=url)
        gw.start_worker(worker.id)

Parameters of :class:`GatewayClient`:
    base_url: the gateway, e.g. ``http://localhost:5001``.
    api_key: sent as the ``x-api-key`` header, never logged or shown.
    timeout: seconds for each HTTP request (the gateway's backend deadline is 30 s).
    client: an ``httpx.Client`` to use instead of a new one (tests pass a ``MockTransport``);
        the caller keeps ownership of a client it passes.
    log: optional callable receiving one diagnostic line per request (no headers, ever).
    stop: optional callable returning the invocation's stop event (read at each call). While
        it is clear, a call runs on a helper thread that the main thread watches next to the
        event: the first Ctrl+C/SIGTERM abandons a hung call within :data:`POLL` s with
        :class:`~alpaca_cli.errors.Interrupted` instead of waiting out ``timeout`` (nothing is
        raised into httpx). Once it is set, calls are cleanup (undoing what a step made): they
        run with at most :data:`CLEANUP_BUDGET` s for all of them together.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from alpaca_cli.closing import Closing
from alpaca_cli.errors import CommandRefused, GatewayUnauthorized, GatewayUnreachable, Interrupted
from alpaca_cli.platform.records import (
    ConnectionInfo,
    WorkerInfo,
    parse_connection,
    parse_worker,
    pick,
)

DOTNET_MIME: Final = "application/x-dotnet-dll"
UP_HINT: Final = "Is the platform up? Check VIRTUFIN_API_URL, or start one with `alpaca-md dev up`."
POLL: Final = 0.1
"""How often a caller waiting for an HTTP answer looks at the stop event."""
CLEANUP_BUDGET: Final = 3.0
"""Seconds every gateway call made after the first signal gets, all together: the undo of a
step (delete the worker it created...) must fit in the ~5 s an interrupt may take, with the
~7 s a CI runner leaves between SIGINT and SIGKILL as the hard limit."""


@dataclass(frozen=True, slots=True)
class CreatedWorker:
    """What ``CreateWorker`` returned, and which topic field the platform accepted."""

    id: str
    topic_field: str = "topics"


@dataclass(frozen=True, slots=True)
class Health:
    """What ``/health`` said: the overall status and each entry's.

    Why a class: one Unhealthy reason is no failure. Outside Development a gateway without API
    keys fails readiness while serving everything (auth is then off), so
    :attr:`only_missing_keys` turns that into a :attr:`warning` that shows the entries.
    """

    status: str
    entries: Mapping[str, str]
    """Entry name -> its status (``Healthy``/``Unhealthy``/``Degraded``)."""
    descriptions: Mapping[str, str]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Health:
        """Read a ``/health`` body leniently (missing entries = none)."""
        raw = body.get("entries")
        entries: dict[str, str] = {}
        descriptions: dict[str, str] = {}
        if isinstance(raw, Mapping):
            for name, entry in raw.items():
                entry = entry if isinstance(entry, Mapping) else {}
                entries[str(name)] = str(entry.get("status") or "")
                descriptions[str(name)] = str(entry.get("description") or "")
        return cls(str(body.get("status") or ""), entries, descriptions)

    @property
    def healthy(self) -> bool:
        return self.status.lower() == "healthy"

    @property
    def failing(self) -> list[str]:
        """Names of the entries that are not Healthy."""
        return [name for name, status in self.entries.items() if status.lower() != "healthy"]

    @property
    def only_missing_keys(self) -> bool:
        """Unhealthy, and every failing entry is about API keys (by name or description)."""
        failing = self.failing
        return (
            not self.healthy
            and bool(failing)
            and all(_about_keys(name, self.descriptions.get(name, "")) for name in failing)
        )

    @property
    def warning(self) -> str | None:
        """One line for the operator when only the API keys are missing, else ``None``."""
        if not self.only_missing_keys:
            return None
        shown = "; ".join(
            f"{name}: {self.entries[name]}"
            + (f" ({self.descriptions[name]})" if self.descriptions.get(name) else "")
            for name in self.entries
        )
        return (
            "the gateway reports Unhealthy only because it has no API keys configured "
            f"(a production gateway's readiness; it still serves, with auth off): {shown}"
        )


def _about_keys(name: str, description: str) -> bool:
    text = f"{name} {description}".lower().replace("-", " ").replace("_", " ")
    return "api key" in text or "apikey" in text.replace(" ", "")


def _tls_context(base_url: str) -> ssl.SSLContext | bool:
    """What ``httpx.Client(verify=...)`` gets: its default (the system's CAs) for an https
    gateway; for a plain-http one, a context that trusts no CA at all.

    Why: every request goes to ``base_url`` (no redirects are followed), so a plain-http
    gateway never uses TLS, yet httpx's default loads the CA bundle when the client is built
    (~30 ms of ``alpaca-md list``'s start). The empty context still verifies: should a TLS
    connection ever be made through it, it fails instead of going unchecked.
    """
    if base_url.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


class GatewayClient(Closing):
    """Client of one gateway; see the module docstring for parameters and error mapping."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
        log: Callable[[str], None] | None = None,
        stop: Callable[[], threading.Event | None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"x-api-key": api_key} if api_key else {}
        self._timeout = timeout
        self._owns_client = client is None
        # A dead host should fail fast; a slow backend gets the gateway's own 30 s deadline.
        self._http_timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._client = (
            client
            if client is not None
            else httpx.Client(timeout=self._http_timeout, verify=_tls_context(self.base_url))
        )
        self._log = log
        self._topics_supported: bool | None = None
        self._schema_checked = False
        self._filters_supported: bool | None = None
        self._deadline: float | None = None
        self._budget = 0.0
        self._stop = stop
        self._cleanup_deadline: float | None = None

    def __repr__(self) -> str:
        return f"GatewayClient({self.base_url!r})"

    def with_timeout(self, timeout: float, *, budget: float | None = None) -> GatewayClient:
        """The same gateway, HTTP connections and key, with shorter waits.

        Why: the client's own timeout is sized for the gateway's 30 s backend deadline, so a
        gateway that accepts and never answers holds each call that long; ``run``'s teardown
        must finish within the ~7 s a CI runner leaves between SIGINT and SIGKILL. Each request
        of the returned client waits at most ``timeout`` s; with ``budget``, all of them
        together at most ``budget`` s from now: once it is spent a call fails at once with
        :class:`GatewayUnreachable`, without sending. (httpx bounds each phase, not a whole
        response: a gateway that trickles bytes can still stretch one call.)

        The returned client never closes the shared HTTP client; close this one as before.
        """
        clone = GatewayClient(
            self.base_url, timeout=timeout, client=self._client, log=self._log, stop=self._stop
        )
        clone._headers = self._headers
        clone._topics_supported = self._topics_supported
        clone._schema_checked = self._schema_checked
        clone._filters_supported = self._filters_supported
        if budget is not None:
            clone._budget = budget
            clone._deadline = time.monotonic() + budget
        return clone

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    # -- transport ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        accept_status: Container[int] = (),
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        limit, http_timeout = self._timeout, self._http_timeout
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayUnreachable(
                    f"No time left for {method} {path} at {self.base_url}: the "
                    f"{self._budget:g} s allowed for these calls are spent.",
                    url=self.base_url,
                    hint=UP_HINT,
                )
            if remaining < limit:
                limit, http_timeout = remaining, httpx.Timeout(remaining)
        stop = self._stop() if self._stop is not None else None
        if stop is not None and stop.is_set():
            # Cleanup after a signal: short, and bounded all together.
            now = time.monotonic()
            if self._cleanup_deadline is None:
                self._cleanup_deadline = now + CLEANUP_BUDGET
            remaining = self._cleanup_deadline - now
            if remaining <= 0:
                raise Interrupted(
                    f"{method} {path} not sent: the {CLEANUP_BUDGET:g} s allowed for clean-up "
                    "calls after the interrupt are spent."
                )
            if remaining < limit:
                limit, http_timeout = remaining, httpx.Timeout(remaining)
            stop = None  # not abandoned: the budget bounds it
        if self._log is not None:
            # A package travels as base64 in the body: show its start, not megabytes.
            shown = "" if body is None else f" {_snippet(json.dumps(body), 400)}"
            self._log(f"gateway {method} {url}{shown}")
        try:
            what = (
                f"{body['service']}.{body['method']}"
                if isinstance(body, dict) and "service" in body
                else f"{method} {path}"
            )
            response = self._send(
                stop,
                what,
                lambda: self._client.request(
                    method,
                    url,
                    json=body,
                    params=params,
                    headers=self._headers,
                    timeout=http_timeout,
                ),
            )
        except httpx.TimeoutException as exc:
            raise GatewayUnreachable(
                f"The gateway at {self.base_url} did not answer within {limit:g} s "
                f"({type(exc).__name__}).",
                url=self.base_url,
                hint=UP_HINT,
            ) from exc
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(
                f"Cannot reach the gateway at {self.base_url} ({type(exc).__name__}: {exc}).",
                url=self.base_url,
                hint=UP_HINT,
            ) from exc
        if self._log is not None:
            self._log(f"gateway {method} {path} -> HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise GatewayUnauthorized(
                f"The gateway at {self.base_url} refused the API key "
                f"(HTTP {response.status_code}).",
                hint="Set VIRTUFIN_API_KEY to a key the gateway accepts.",
            )
        # ``accept_status``: answers the caller reads itself (a 503 /health, an optional
        # schema endpoint's 5xx), instead of "the gateway is unreachable".
        if response.status_code >= 500 and response.status_code not in accept_status:
            raise GatewayUnreachable(
                f"The gateway at {self.base_url} answered HTTP {response.status_code} for {path}.",
                url=self.base_url,
                hint=UP_HINT,
            )
        return response

    @staticmethod
    def _send(
        stop: threading.Event | None,
        what: str,
        call: Callable[[], httpx.Response],
    ) -> httpx.Response:
        """``call()`` here, or on a helper thread that ``stop`` lets this thread abandon.

        Why a thread rather than a short read timeout: a hung call may be in any phase (connect,
        headers, a body that trickles), and only the caller's thread can leave all of them at
        once without raising into httpx. An abandoned call may still take effect on the
        gateway: the step must treat its object as possibly created (tags, pending entry).
        """
        if stop is None:
            return call()
        done = threading.Event()
        outcome: list[httpx.Response | BaseException] = []

        def work() -> None:
            try:
                outcome.append(call())
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name=f"gateway {what}", daemon=True).start()
        while not done.wait(POLL):
            if stop.is_set():
                raise Interrupted(
                    f"stopped while waiting for the gateway's answer to {what}; the call was "
                    "abandoned."
                )
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise GatewayUnreachable(
                f"{self.base_url}{path} answered HTTP {response.status_code} with a body that is "
                "not JSON: this does not look like a virtufin gateway.",
                url=self.base_url,
                hint="Check VIRTUFIN_API_URL (default http://localhost:5001).",
            ) from exc

    # -- generic calls --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: the parsed body (``status`` is ``Healthy`` or ``Unhealthy``).

        An unhealthy gateway (HTTP 503) raises :class:`GatewayUnreachable` like any 5xx, unless
        it is Unhealthy only because it has no API keys configured (:class:`Health`): a
        gateway outside Development fails its readiness check for that while it still serves
        every call (spec, "Newer platform behaviour"), so the body is returned.
        """
        response = self._request("GET", "/health", accept_status=(503,))
        data = self._json(response, "/health")
        body = data if isinstance(data, dict) else {"status": str(data)}
        if response.status_code == 503 and not Health.of(body).only_missing_keys:
            failing = ", ".join(Health.of(body).failing) or "no entry named"
            raise GatewayUnreachable(
                f"The gateway at {self.base_url} answered HTTP 503 for /health "
                f"(Unhealthy: {failing}).",
                url=self.base_url,
                hint=UP_HINT,
            )
        return body

    def check_health(self) -> Health:
        """:meth:`health` as a :class:`Health` (``warning`` set when only keys are missing)."""
        return Health.of(self.health())

    def invoke(self, service: str, method: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/gateway/invoke-json``; returns the decoded ``response_data``.

        Raises:
            CommandRefused: ``success: false`` (``status`` = gRPC code name), or an HTTP 4xx.
            GatewayUnauthorized: HTTP 401/403.
            GatewayUnreachable: no answer, HTTP 5xx, or not a gateway.
        """
        path = "/v1/gateway/invoke-json"
        body = {"service": service, "method": method, "request_data": json.dumps(request)}
        response = self._request("POST", path, body=body)
        if response.status_code >= 400:
            raise CommandRefused(
                f"The gateway refused {service}.{method} (HTTP {response.status_code}): "
                f"{_snippet(response.text)}",
                status=f"HTTP_{response.status_code}",
            )
        data = self._json(response, path)
        if not isinstance(data, dict):
            raise GatewayUnreachable(
                f"{self.base_url}{path} answered {type(data).__name__}, not an object.",
                url=self.base_url,
                hint="Check VIRTUFIN_API_URL.",
            )
        if not data.get("success", False):
            status = str(data.get("status") or "UNKNOWN")
            message = str(data.get("message") or "no message")
            raise CommandRefused(
                f"The platform refused {service}.{method}: {status}: {message}", status=status
            )
        raw = data.get("response_data", data.get("responseData", ""))
        if isinstance(raw, dict):
            return raw
        if not raw:
            return {}
        try:
            decoded = json.loads(raw)
        except (TypeError, ValueError):
            return {"raw": raw}
        return decoded if isinstance(decoded, dict) else {"value": decoded}

    def list_services(self) -> list[str]:
        """``GET /v1/gateway/list-services``."""
        path = "/v1/gateway/list-services"
        response = self._request("GET", path)
        if response.status_code >= 400:
            raise CommandRefused(
                f"The gateway refused list-services (HTTP {response.status_code}).",
                status=f"HTTP_{response.status_code}",
            )
        data = self._json(response, path)
        services = data.get("services", []) if isinstance(data, dict) else data
        return [str(s) for s in services or []]

    def schema(self, service: str, method: str, kind: str = "input") -> list[dict[str, Any]] | None:
        """The fields of a method's input (or output) message; ``None`` when not published.

        Discovery is optional: a 4xx *or* 5xx from it means "the platform does not say", and
        the caller falls back to the default form (issue 11, hole 15) instead of failing.
        """
        path = f"/v1/grpc/{service}/schema/{method}"
        response = self._request("GET", path, params={"type": kind}, accept_status=range(500, 600))
        if response.status_code >= 400:
            if self._log is not None and response.status_code >= 500:
                self._log(
                    f"gateway schema {service}.{method}: HTTP {response.status_code}, ignored"
                )
            return None
        try:
            response.json()
        except ValueError:
            return None
        data = self._json(response, path)
        fields = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(fields, list):
            return None
        return [f for f in fields if isinstance(f, dict)]

    # -- WorkManager ----------------------------------------------------------------------------

    def _supports_topics(self) -> bool | None:
        """Whether CreateWorker's schema has ``topics`` (None = the platform does not say)."""
        if not self._schema_checked:
            self._schema_checked = True
            try:
                fields = self.schema("workmanager", "CreateWorker")
            except CommandRefused:
                fields = None
            if fields is not None:
                names = {str(f.get("name", "")) for f in fields}
                self._topics_supported = "topics" in names or "topic" not in names
        return self._topics_supported

    def create_worker(
        self,
        *,
        topics: Sequence[str],
        content: bytes | None = None,
        url: str | None = None,
        mime_type: str = DOTNET_MIME,
        tags: Mapping[str, str] | None = None,
        group: str | None = None,
    ) -> CreatedWorker:
        """``CreateWorker`` with ``topics``, or ``topic`` on an older platform.

        The older form is used when the platform's schema has no ``topics`` field, or when it
        rejects ``topics`` with INVALID_ARGUMENT. Exactly one of ``content`` / ``url``.
        """
        import base64

        if (content is None) == (url is None):
            raise ValueError("create_worker needs exactly one of content= or url=")
        code_source = (
            {"content": base64.b64encode(content).decode("ascii")}
            if content is not None
            else {"url": url}
        )
        request: dict[str, Any] = {"code_source": code_source, "mime_type": mime_type}
        if tags:
            request["tags"] = dict(tags)
        if self._supports_topics() is False:
            return self._create_legacy(request, topics, group)
        try:
            data = self.invoke("workmanager", "CreateWorker", {**request, "topics": list(topics)})
        except CommandRefused as exc:
            if exc.status == "INVALID_ARGUMENT" and "topics" in exc.message.lower():
                self._topics_supported = False
                return self._create_legacy(request, topics, group)
            raise
        return CreatedWorker(id=_worker_id(data), topic_field="topics")

    def _create_legacy(
        self, request: dict[str, Any], topics: Sequence[str], group: str | None
    ) -> CreatedWorker:
        if len(topics) != 1:
            raise CommandRefused(
                "This platform's CreateWorker takes a single `topic`; "
                f"cannot subscribe a worker to {len(topics)} topics.",
                status="INVALID_ARGUMENT",
            )
        legacy = {**request, "topic": topics[0]}
        if group:
            legacy["group"] = group
        data = self.invoke("workmanager", "CreateWorker", legacy)
        return CreatedWorker(id=_worker_id(data), topic_field="topic")

    def start_worker(self, worker_id: str) -> None:
        """``StartWorker`` (idempotent on the platform)."""
        self.invoke("workmanager", "StartWorker", {"id": worker_id})

    def stop_worker(self, worker_id: str) -> None:
        """``StopWorker`` (idempotent on the platform)."""
        self.invoke("workmanager", "StopWorker", {"id": worker_id})

    def delete_worker(self, worker_id: str) -> None:
        """``DeleteWorker`` (no Stop needed first)."""
        self.invoke("workmanager", "DeleteWorker", {"id": worker_id})

    def list_workers(self, tags: Mapping[str, str] | None = None) -> list[WorkerInfo]:
        """``ListWorkers``, parsed leniently; with ``tags``, only workers carrying all of them.

        The tags go to the platform as ``filters`` (AND-matched TagFilters, newer platforms);
        a platform that rejects the field gets a plain ``ListWorkers`` and the filter is applied
        here. Either way the answer is filtered client-side too: a platform that silently
        ignores an unknown field must not hand us someone else's workers.
        """
        request: dict[str, Any] = {}
        if tags and self._filters_supported is not False:
            request["filters"] = [{"key": k, "value": v} for k, v in tags.items()]
        try:
            data = self.invoke("workmanager", "ListWorkers", request)
        except CommandRefused as exc:
            if not request or exc.status not in ("INVALID_ARGUMENT", "UNIMPLEMENTED"):
                raise
            self._filters_supported = False
            data = self.invoke("workmanager", "ListWorkers", {})
        workers = [parse_worker(w) for w in data.get("workers") or [] if isinstance(w, Mapping)]
        if tags:
            workers = [w for w in workers if all(w.tags.get(k) == v for k, v in tags.items())]
        return workers

    # -- WebSocketManager (direct, without the controller worker) -------------------------------

    def list_connections(self) -> list[ConnectionInfo]:
        """``websocketmanager.List``: every connection the WSM holds."""
        data = self.invoke("websocketmanager", "List", {})
        connections = data.get("connections") or []
        return [parse_connection(c) for c in connections if isinstance(c, Mapping)]

    def disconnect(self, connection_id: str) -> None:
        """``websocketmanager.Disconnect``; NOT_FOUND raises :class:`CommandRefused`."""
        self.invoke("websocketmanager", "Disconnect", {"id": connection_id})

    def set_connection_tags(self, connection_id: str, tags: Mapping[str, str]) -> None:
        """``websocketmanager.SetTags``: replace all of a connection's tags (as the TUI does).

        The controller's ``create`` documents no tags argument, so this is how a connection
        gets its ownership tags, right after ``create`` answers.
        """
        self.invoke("websocketmanager", "SetTags", {"id": connection_id, "tags": dict(tags)})

    def set_connection_tag(self, connection_id: str, key: str, value: str) -> None:
        """``websocketmanager.SetTag``: one tag (an empty value clears it)."""
        self.invoke("websocketmanager", "SetTag", {"id": connection_id, "key": key, "value": value})


def _worker_id(data: Mapping[str, Any]) -> str:
    value = pick(data, "id", "workerId", "worker_id")
    if not value:
        raise CommandRefused("CreateWorker succeeded but returned no worker id.", status="INTERNAL")
    return str(value)


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["DOTNET_MIME", "CreatedWorker", "GatewayClient"]
