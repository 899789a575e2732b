"""Python port of the WebSocketManagerController worker: JSON commands in, JSON replies out.

The real worker is a .NET DLL the WorkManager hosts; a .NET runtime cannot run here, so the
embedded WorkManager runs this port whenever it is handed that package. It takes the command
CloudEvent's ``data`` (a JSON object with a lowercase ``command`` and flat arguments, see
``spec/virtufin-platform.md``) and returns the reply object; routing the reply (reply topic,
``correlationid``) is the WorkManager's job.

The WSM is the in-process :class:`~alpaca_cli.devstack.wsm.WebSocketManager` (same event loop);
the real worker reaches it over gRPC through the gateway, with the same outcomes and messages.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.wsm import CONNECTION_NOT_FOUND, TOPIC_REQUIRED, WebSocketManager

__all__ = [
    "COMMAND_TOPIC",
    "REPLY_TOPIC",
    "WebSocketManagerController",
    "is_controller_package",
]

logger = logging.getLogger(__name__)

COMMAND_TOPIC = "command.websocketmanagercontroller"
REPLY_TOPIC = "response.websocketmanagercontroller"
EMBEDDED_URL = "embedded://websocketmanagercontroller"
"""Code-source URL that names the built-in controller without shipping a package."""

Reply = dict[str, Any]


def is_controller_package(names: list[str]) -> bool:
    """True when a package's file list holds the controller DLL (any folder, any case)."""
    for name in names:
        base = name.rsplit("/", 1)[-1].lower()
        if base.endswith(".dll") and "websocketmanagercontroller" in base:
            return True
    return False


def _fail(command: str, message: str) -> Reply:
    return {"command": command, "success": False, "message": message}


class WebSocketManagerController:
    """One worker instance's command handler.

    Example::

        controller = WebSocketManagerController(wsm)
        reply = await controller.handle(b'{"command":"list"}')
    """

    def __init__(self, wsm: WebSocketManager) -> None:
        self._wsm = wsm
        self._rpc_id = 0
        self._commands: dict[str, Callable[[str, dict[str, Any]], Awaitable[Reply]]] = {
            "create": self._create,
            "send_raw": self._send_raw,
            "publish": self._publish,
            "stop_publish": self._stop_publish,
            "stop-publish": self._stop_publish,
            "subscribe": self._subscribe,
            "unsubscribe": self._subscribe,
            "list": self._list,
            "disconnect": self._disconnect,
            "stop": self._stop,
        }

    async def handle(self, data: bytes) -> Reply:
        """Run one command and return its reply; never raises for bad input."""
        try:
            doc: Any = orjson.loads(data)
            if isinstance(doc, str):  # a JSON object sent as a JSON string
                doc = orjson.loads(doc)
        except orjson.JSONDecodeError:
            return _fail("error", "Failed to parse command JSON")
        if not isinstance(doc, dict):
            return _fail("error", "Failed to parse command JSON")
        command = doc.get("command")
        if not isinstance(command, str) or not command:
            return _fail("error", "Missing 'command' field")
        command = command.lower()
        handler = self._commands.get(command)
        if handler is None:
            return _fail(command, f"Unknown command: {command}")
        try:
            return await handler(command, doc)
        except RpcError as exc:
            return _fail(command, exc.message)
        except Exception as exc:  # a worker answers, it does not crash
            logger.exception("controller: %s failed", command)
            return _fail(command, f"{type(exc).__name__}: {exc}")

    async def _create(self, command: str, doc: dict[str, Any]) -> Reply:
        url = doc.get("url")
        if not isinstance(url, str) or not url:
            return _fail(command, "Url is required")
        auto = doc.get("auto_reconnect", doc.get("autoReconnect", False))
        record = await self._wsm.connect(url, auto_reconnect=auto is True)
        return {"command": command, "success": True, "id": record.id, "message": "connected"}

    async def _send_raw(self, command: str, doc: dict[str, Any]) -> Reply:
        cid = _id(doc)
        raw = doc.get("message")
        if not isinstance(raw, str):
            return _fail(command, "Message is required")
        try:
            payload = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _fail(command, "Message must be base64")
        ctype = doc.get("content_type", doc.get("contentType")) or "application/json"
        await self._wsm.send_raw(cid, payload, str(ctype))
        return {"command": command, "success": True, "id": cid, "message": "sent"}

    async def _publish(self, command: str, doc: dict[str, Any]) -> Reply:
        cid = _id(doc)
        topic = doc.get("topic")
        if not isinstance(topic, str) or not topic.strip():
            return _fail(command, TOPIC_REQUIRED)
        self._wsm.start_publish(cid, topic)
        return {
            "command": command,
            "success": True,
            "id": cid,
            "topic": topic,
            "message": f"publishing to {topic}",
        }

    async def _stop_publish(self, command: str, doc: dict[str, Any]) -> Reply:
        cid = _id(doc)
        self._wsm.stop_publish(cid)
        return {"command": command, "success": True, "id": cid, "message": "stopped publishing"}

    async def _subscribe(self, command: str, doc: dict[str, Any]) -> Reply:
        """Binance-style JSON-RPC ``SUBSCRIBE``/``UNSUBSCRIBE`` helper (unused for Alpaca)."""
        cid = _id(doc)
        params = doc.get("params")
        if not isinstance(params, list):
            return _fail(command, "Params must be a list")
        self._rpc_id += 1
        body = orjson.dumps({"method": command.upper(), "params": params, "id": self._rpc_id})
        await self._wsm.send_raw(cid, body, "application/json")
        return {"command": command, "success": True, "id": cid, "message": f"{command}d"}

    async def _list(self, command: str, doc: dict[str, Any]) -> Reply:
        connections = [r.to_json() for r in self._wsm.list()]
        return {
            "command": command,
            "success": True,
            "connections": connections,
            "message": f"{len(connections)} connection(s)",
        }

    async def _disconnect(self, command: str, doc: dict[str, Any]) -> Reply:
        cid = _id(doc)
        await self._wsm.disconnect(cid)
        return {"command": command, "success": True, "id": cid, "message": "disconnected"}

    async def _stop(self, command: str, doc: dict[str, Any]) -> Reply:
        closed = 0
        for record in self._wsm.list():
            try:
                await self._wsm.disconnect(record.id)
            except RpcError:  # gone meanwhile
                continue
            closed += 1
        return {"command": command, "success": True, "message": f"stopped {closed} connection(s)"}


def _id(doc: dict[str, Any]) -> str:
    """The connection id argument; a missing one finds no connection, as on the platform."""
    cid = doc.get("id")
    if not isinstance(cid, str) or not cid:
        raise RpcError(Status.NOT_FOUND, CONNECTION_NOT_FOUND)
    return cid
