"""API gateway stand-in (aiohttp): ``invoke-json``, discovery, schema and health endpoints.

Wire contract (``spec/virtufin-platform.md``, "Gateway HTTP"):

* ``POST /v1/gateway/invoke-json`` with ``{"service", "method", "request_data": "<JSON string>"}``
  answers HTTP 200 whenever the gateway itself worked; backend failures are in-band:
  ``{"success":false,"status":"<gRPC code name>","message":"..."}``. ``response_data`` is a JSON
  string in protobuf-JSON style (lowerCamelCase keys, enum names, defaults omitted).
* A body that is not a JSON object is HTTP 400 (with the same three fields, so a client reading
  only the body still sees the failure). An unknown service is ``NOT_FOUND``, an unknown method
  ``UNIMPLEMENTED``, a ``request_data`` that does not fit the method's message
  ``INVALID_ARGUMENT``.
* ``GET /v1/gateway/list-services``, ``GET /v1/grpc/{service}/schema/{method}?type=input``.
* ``GET /health``; never needs the API key. With ``api_key`` set, every other route needs header
  ``x-api-key`` (HTTP 401 otherwise).
* ``legacy=True`` plays a platform from before mid-Aug 2026: CreateWorker takes ``topic`` (+
  optional ``group``) and rejects ``topics`` and ``config``, ListWorkers rejects ``filters``,
  and the schemas say so.
* ``keys_required_ready=True`` plays a gateway outside Development with no API keys configured:
  ``/health`` is Unhealthy (HTTP 503, entry ``api-keys``) while every route still serves (spec
  "Readiness"; the entry's name and text are ours, the real ones are undocumented).
* ``duplicate_create=True`` plays the gateway's own retry of a CreateWorker that had worked
  (spec "Newer platform behaviour"): every CreateWorker runs twice and answers with the second
  worker's id, leaving an extra worker with the same tags behind.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.schema import Field, Message, SchemaError, parse_message
from alpaca_cli.devstack.workmanager import CodeSource, WorkManager
from alpaca_cli.devstack.wsm import WebSocketManager

__all__ = ["Gateway", "Method", "build_services"]

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
HealthCheck = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Method:
    """One gRPC method the gateway can invoke: its request message and its implementation."""

    input: Message
    handler: Handler


_ID = Field("id", 1, "String")
_TAGS = Field("tags", 4, "Message", map=True)
_CODE_SOURCE = Message(
    "workmanager.CodeSource",
    (Field("content", 1, "Bytes"), Field("url", 2, "String")),
)
_TAG_FILTER = Message(
    "workmanager.TagFilter", (Field("key", 1, "String"), Field("value", 2, "String"))
)


def _create_worker_message(legacy: bool) -> Message:
    """Newer platforms take ``topics`` and ``config``; older ones ``topic`` (+ ``group``)."""
    fields = (
        (Field("topic", 3, "String"), Field("group", 5, "String"), _TAGS)
        if legacy
        else (
            Field("topics", 3, "String", repeated=True),
            _TAGS,
            Field("config", 6, "Message", map=True),
        )
    )
    return Message(
        "workmanager.CreateWorkerRequest",
        (
            Field("code_source", 1, "Message", message=_CODE_SOURCE),
            Field("mime_type", 2, "String"),
            *fields,
        ),
    )


def _id_message(name: str) -> Message:
    return Message(name, (_ID,))


def build_services(
    workmanager: WorkManager,
    wsm: WebSocketManager,
    *,
    legacy: bool = False,
    duplicate_create: bool = False,
) -> dict[str, dict[str, Method]]:
    """The service table: ``{service: {method: Method}}``."""

    async def create_worker(req: dict[str, Any]) -> dict[str, Any]:
        source = req.get("code_source", {})
        content: bytes = source.get("content", b"")
        url: str = source.get("url", "")
        if content and url:
            raise RpcError(Status.INVALID_ARGUMENT, "code_source: give content or url, not both")
        if legacy:
            topic = req.get("topic", "")
            topics = [topic] if topic else []
        else:
            topics = req.get("topics", [])
        args: dict[str, Any] = {
            "code": CodeSource(content=content, url=url),
            "mime_type": req.get("mime_type", ""),
            "topics": topics,
            "tags": req.get("tags"),
            "group": req.get("group", ""),
            "config": req.get("config"),
        }
        worker = await workmanager.create(**args)
        if duplicate_create:  # the gateway retried a call that had already worked
            worker = await workmanager.create(**args)
        return {"id": worker.id}

    async def start_worker(req: dict[str, Any]) -> dict[str, Any]:
        await workmanager.start_worker(req.get("id", ""))
        return {}

    async def stop_worker(req: dict[str, Any]) -> dict[str, Any]:
        await workmanager.stop_worker(req.get("id", ""))
        return {}

    async def delete_worker(req: dict[str, Any]) -> dict[str, Any]:
        await workmanager.delete_worker(req.get("id", ""))
        return {}

    async def list_workers(req: dict[str, Any]) -> dict[str, Any]:
        filters = [(f.get("key", ""), f.get("value", "")) for f in req.get("filters", [])]
        workers = [w.to_json() for w in workmanager.list_workers(filters)]
        return {"workers": workers} if workers else {}

    async def connect(req: dict[str, Any]) -> dict[str, Any]:
        record = await wsm.connect(
            req.get("url", ""),
            auto_reconnect=req.get("auto_reconnect", False),
            tags=req.get("tags"),
        )
        return wsm.connect_result(record)

    async def list_connections(req: dict[str, Any]) -> dict[str, Any]:
        connections = [r.to_json() for r in wsm.list()]
        return {"connections": connections} if connections else {}

    async def disconnect(req: dict[str, Any]) -> dict[str, Any]:
        await wsm.disconnect(req.get("id", ""))
        return {}

    async def start_publish(req: dict[str, Any]) -> dict[str, Any]:
        wsm.start_publish(req.get("id", ""), req.get("topic", ""))
        return {}

    async def stop_publish(req: dict[str, Any]) -> dict[str, Any]:
        wsm.stop_publish(req.get("id", ""))
        return {}

    async def send_raw(req: dict[str, Any]) -> dict[str, Any]:
        await wsm.send_raw(
            req.get("id", ""),
            req.get("message", b""),
            req.get("content_type", "") or "application/octet-stream",
        )
        return {}

    async def set_tag(req: dict[str, Any]) -> dict[str, Any]:
        wsm.set_tag(req.get("id", ""), req.get("key", ""), req.get("value", ""))
        return {}

    async def set_tags(req: dict[str, Any]) -> dict[str, Any]:
        wsm.set_tags(req.get("id", ""), req.get("tags", {}))
        return {}

    async def get_tag(req: dict[str, Any]) -> dict[str, Any]:
        value = wsm.get_tag(req.get("id", ""), req.get("key", ""))
        return {"value": value} if value else {}

    async def get_tags(req: dict[str, Any]) -> dict[str, Any]:
        tags = wsm.get_tags(req.get("id", ""))
        return {"tags": tags} if tags else {}

    wm = "workmanager."
    ws = "websocketmanager."
    return {
        "workmanager": {
            "CreateWorker": Method(_create_worker_message(legacy), create_worker),
            "StartWorker": Method(_id_message(wm + "StartWorkerRequest"), start_worker),
            "StopWorker": Method(_id_message(wm + "StopWorkerRequest"), stop_worker),
            "DeleteWorker": Method(_id_message(wm + "DeleteWorkerRequest"), delete_worker),
            "ListWorkers": Method(
                Message(
                    wm + "ListWorkersRequest",
                    ()
                    if legacy
                    else (Field("filters", 1, "Message", repeated=True, message=_TAG_FILTER),),
                ),
                list_workers,
            ),
        },
        "websocketmanager": {
            "Connect": Method(
                Message(
                    ws + "ConnectRequest",
                    (
                        Field("url", 1, "String"),
                        Field("auto_reconnect", 2, "Bool"),
                        Field("tags", 3, "Message", map=True),
                    ),
                ),
                connect,
            ),
            "List": Method(Message(ws + "ListRequest"), list_connections),
            "Disconnect": Method(_id_message(ws + "DisconnectRequest"), disconnect),
            "StartPublish": Method(
                Message(ws + "StartPublishRequest", (_ID, Field("topic", 2, "String"))),
                start_publish,
            ),
            "StopPublish": Method(_id_message(ws + "StopPublishRequest"), stop_publish),
            "SendRaw": Method(
                Message(
                    ws + "SendRawRequest",
                    (_ID, Field("message", 2, "Bytes"), Field("content_type", 3, "String")),
                ),
                send_raw,
            ),
            "SetTag": Method(
                Message(
                    ws + "SetTagRequest",
                    (_ID, Field("key", 2, "String"), Field("value", 3, "String")),
                ),
                set_tag,
            ),
            "SetTags": Method(
                Message(ws + "SetTagsRequest", (_ID, Field("tags", 2, "Message", map=True))),
                set_tags,
            ),
            "GetTag": Method(
                Message(ws + "GetTagRequest", (_ID, Field("key", 2, "String"))), get_tag
            ),
            "GetTags": Method(_id_message(ws + "GetTagsRequest"), get_tags),
        },
    }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _failed(status: Status, message: str) -> dict[str, Any]:
    return {"success": False, "status": status.value, "message": message}


def _failure(status: Status, message: str, http_status: int = 200) -> web.Response:
    return _json(_failed(status, message), http_status)


def _duration(seconds: float) -> str:
    """.NET TimeSpan text, as ASP.NET health checks write ``totalDuration``."""
    whole = int(seconds)
    frac = int((seconds - whole) * 10_000_000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{frac:07d}"


class Gateway:
    """The HTTP gateway in front of the WorkManager and the WebSocketManager.

    Example::

        gateway = Gateway(workmanager, wsm, port=0)
        await gateway.start()
        print(gateway.url)      # http://127.0.0.1:<port>
        await gateway.stop()

    **Parameters**

    * ``host``, ``port`` - where to listen (port 0: any free port; :attr:`port` after start).
    * ``api_key`` - when set, required as ``x-api-key`` on every route but ``/health``.
    * ``legacy`` - behave like an older platform (CreateWorker ``topic`` instead of ``topics``).
    * ``duplicate_create`` - run every CreateWorker twice, answering with the second id.
    * ``keys_required_ready`` - without ``api_key``, report ``/health`` Unhealthy (readiness)
      and serve anyway.
    * ``dapr_healthy`` - reports the sidecar's state for ``/health`` (Unhealthy + 503 when False).
    * ``deadline`` - backend deadline per call, seconds (``DEADLINE_EXCEEDED`` after it).
    """

    def __init__(
        self,
        workmanager: WorkManager,
        wsm: WebSocketManager,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        legacy: bool = False,
        dapr_healthy: HealthCheck | None = None,
        deadline: float = 30.0,
        duplicate_create: bool = False,
        keys_required_ready: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self._api_key = api_key or None
        self.legacy = legacy
        self._dapr_healthy = dapr_healthy or (lambda: True)
        self._deadline = deadline
        self._keys_missing = keys_required_ready and self._api_key is None
        self.services = build_services(
            workmanager, wsm, legacy=legacy, duplicate_create=duplicate_create
        )
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (routes and the API-key middleware)."""
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/gateway/invoke-json", self._invoke)
        app.router.add_get("/v1/gateway/list-services", self._list_services)
        app.router.add_get("/v1/grpc/{service}/schema/{method}", self._schema)
        return app

    async def start(self) -> None:
        """Bind and serve; :attr:`port` holds the bound port afterwards."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("gateway: serving on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- middleware and routes -----------------------------------------------------------------

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self._api_key is not None and request.path != "/health":
            given = request.headers.get("x-api-key", "")
            if not hmac.compare_digest(given.encode(), self._api_key.encode()):
                return _failure(Status.UNAUTHENTICATED, "Invalid or missing API key", 401)
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        dapr_ok = self._dapr_healthy()
        dapr_took = time.perf_counter() - started

        def entry(ok: bool, took: float, description: str) -> dict[str, Any]:
            return {
                "data": {},
                "description": description,
                "duration": _duration(took),
                "status": "Healthy" if ok else "Unhealthy",
                "tags": [],
            }

        healthy = dapr_ok and not self._keys_missing
        entries = {
            "dapr": entry(
                dapr_ok, dapr_took, "Dapr sidecar is healthy" if dapr_ok else "Dapr is down"
            ),
            "grpc-channel-pool": entry(True, 0.0, "gRPC channel pool is healthy"),
        }
        if self._keys_missing:
            entries["api-keys"] = entry(False, 0.0, "No API keys are configured")
        body = {
            "status": "Healthy" if healthy else "Unhealthy",
            "totalDuration": _duration(time.perf_counter() - started),
            "entries": entries,
        }
        return _json(body, 200 if healthy else 503)

    async def _list_services(self, request: web.Request) -> web.Response:
        return _json({"services": list(self.services)})

    async def _schema(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        name = request.match_info["method"]
        kind = request.query.get("type", "input")
        methods = self.services.get(service)
        if methods is None:
            return _json({"error": f"Service '{service}' not found"}, 404)
        method = methods.get(name)
        if method is None:
            return _json({"error": f"Method '{name}' not found in service '{service}'"}, 404)
        if kind != "input":
            return _json({"error": f"Unsupported schema type '{kind}': use type=input"}, 400)
        return _json(
            {
                "service": service,
                "method": name,
                "type": kind,
                "messageType": method.input.name,
                "fields": method.input.describe(),
            }
        )

    async def _invoke(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _failure(Status.INVALID_ARGUMENT, "Request body is not valid JSON", 400)
        if not isinstance(body, dict):
            return _failure(Status.INVALID_ARGUMENT, "Request body must be a JSON object", 400)
        data = body.get("request_data", body.get("requestData", "{}"))
        return _json(await self.invoke_json(body.get("service"), body.get("method"), data))

    async def invoke_json(self, service: Any, name: Any, data: Any) -> dict[str, Any]:
        """One invoke-json call, whichever port carried it: the answer's fields as a dict.

        Shared by ``POST /v1/gateway/invoke-json`` and the gRPC ``virtufin.Gateway/InvokeJson``
        (:mod:`alpaca_cli.devstack.gateway_grpc`), so that both transports reach the same
        backends with the same in-band failures. Never raises for bad input.
        """
        if not isinstance(service, str) or not service:
            return _failed(Status.INVALID_ARGUMENT, "Field 'service' is required")
        if not isinstance(name, str) or not name:
            return _failed(Status.INVALID_ARGUMENT, "Field 'method' is required")
        methods = self.services.get(service)
        if methods is None:
            return _failed(Status.NOT_FOUND, f"Service '{service}' not found")
        method = methods.get(name)
        if method is None:
            return _failed(
                Status.UNIMPLEMENTED, f"Method '{name}' not found in service '{service}'"
            )
        if data is None or data == "":
            data = "{}"
        if not isinstance(data, str):
            return _failed(Status.INVALID_ARGUMENT, "request_data must be a JSON string")
        try:
            request_doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return _failed(Status.INVALID_ARGUMENT, "request_data is not valid JSON")
        try:
            parsed = parse_message(method.input, request_doc)
        except SchemaError as exc:
            return _failed(Status.INVALID_ARGUMENT, f"Invalid request_data: {exc}")
        try:
            result = await asyncio.wait_for(method.handler(parsed), self._deadline)
        except RpcError as exc:
            return _failed(exc.status, exc.message)
        except TimeoutError:
            return _failed(Status.DEADLINE_EXCEEDED, f"{service}.{name} did not answer in time")
        except Exception as exc:
            logger.exception("gateway: %s.%s failed", service, name)
            return _failed(Status.INTERNAL, f"{service}.{name} failed: {type(exc).__name__}")
        return {
            "success": True,
            "status": Status.OK.value,
            "message": "",
            "response_data": orjson.dumps(result).decode(),
        }
