"""The gateway client against httpx.MockTransport: error mapping, in-band failures, parsing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from alpaca_cli.errors import (
    CommandRefused,
    ExitCode,
    GatewayUnauthorized,
    GatewayUnreachable,
)
from alpaca_cli.platform.gateway import GatewayClient
from alpaca_cli.platform.records import parse_worker
from alpaca_cli.platform.records import worker_status as normalize_status

BASE = "http://gw.test:5001"
Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kwargs: Any) -> GatewayClient:
    return GatewayClient(
        BASE, client=httpx.Client(transport=httpx.MockTransport(handler)), **kwargs
    )


def ok(data: Any) -> httpx.Response:
    return httpx.Response(
        200,
        json={"success": True, "status": "OK", "message": "", "response_data": json.dumps(data)},
    )


def refused(status: str, message: str) -> httpx.Response:
    return httpx.Response(
        200, json={"success": False, "status": status, "message": message, "response_data": ""}
    )


def body_of(request: httpx.Request) -> tuple[str, str, dict[str, Any]]:
    body = json.loads(request.content)
    return body["service"], body["method"], json.loads(body["request_data"])


def test_invoke_sends_request_data_as_a_json_string_and_decodes_response_data() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"workers": []})

    assert client_for(handler).invoke("workmanager", "ListWorkers", {}) == {"workers": []}
    request = seen[0]
    assert request.url.path == "/v1/gateway/invoke-json"
    assert json.loads(request.content) == {
        "service": "workmanager",
        "method": "ListWorkers",
        "request_data": "{}",
    }
    assert "x-api-key" not in request.headers


def test_the_api_key_goes_only_in_the_header_and_never_in_logs() -> None:
    seen: list[httpx.Request] = []
    lines: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({})

    gateway = client_for(handler, api_key="k-secret-123", log=lines.append)
    gateway.start_worker("w1")
    assert seen[0].headers["x-api-key"] == "k-secret-123"
    assert lines and not any("k-secret-123" in line for line in lines)
    assert "k-secret-123" not in repr(gateway)


@pytest.mark.parametrize("code", [401, 403])
def test_unauthorized_maps_to_exit_4(code: int) -> None:
    gateway = client_for(lambda r: httpx.Response(code, text="nope"))
    with pytest.raises(GatewayUnauthorized, match="VIRTUFIN_API_KEY") as info:
        gateway.list_workers()
    assert info.value.exit_code == ExitCode.CREDENTIALS


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_map_to_unreachable_with_the_url(code: int) -> None:
    gateway = client_for(lambda r: httpx.Response(code, text="down"))
    with pytest.raises(GatewayUnreachable) as info:
        gateway.invoke("workmanager", "ListWorkers", {})
    assert info.value.url == BASE
    assert f"HTTP {code}" in str(info.value)
    assert "alpaca-md dev up" in str(info.value)
    assert info.value.exit_code == ExitCode.UNREACHABLE


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.RemoteProtocolError("garbled"),
        httpx.ReadError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_translated_and_chained(exc: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(GatewayUnreachable) as info:
        client_for(handler).health()
    assert info.value.__cause__ is exc
    assert BASE in str(info.value)


def test_every_httpx_transport_error_is_mapped() -> None:
    """Like httpx's own test: a new httpx error class must not slip through unmapped."""
    classes = [
        cls
        for cls in vars(httpx).values()
        if isinstance(cls, type) and issubclass(cls, httpx.TransportError)
    ]
    assert classes
    for cls in classes:

        def handler(request: httpx.Request, cls: type = cls) -> httpx.Response:
            raise cls("x")

        with pytest.raises(GatewayUnreachable):
            client_for(handler).list_services()


def test_in_band_failure_carries_status_and_message() -> None:
    gateway = client_for(lambda r: refused("NOT_FOUND", "Worker w9 not found"))
    with pytest.raises(CommandRefused) as info:
        gateway.stop_worker("w9")
    assert info.value.status == "NOT_FOUND"
    assert "Worker w9 not found" in str(info.value)
    assert info.value.exit_code == ExitCode.REFUSED


def test_a_body_that_is_not_json_is_not_a_gateway() -> None:
    gateway = client_for(lambda r: httpx.Response(200, text="<html>hi</html>"))
    with pytest.raises(GatewayUnreachable, match="not JSON"):
        gateway.list_workers()


def test_other_4xx_is_a_refusal() -> None:
    gateway = client_for(lambda r: httpx.Response(404, text="no route"))
    with pytest.raises(CommandRefused) as info:
        gateway.list_workers()
    assert info.value.status == "HTTP_404"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("RUNNING", "RUNNING"),
        ("WORKER_STATUS_RUNNING", "RUNNING"),
        ("running", "RUNNING"),
        (2, "RUNNING"),
        ("2", "RUNNING"),
        (1, "STOPPED"),
        ("WORKER_STATUS_STOPPED", "STOPPED"),
        (None, "UNSPECIFIED"),
        ("FAILED", "FAILED"),
    ],
)
def test_status_variants(raw: object, expected: str) -> None:
    assert normalize_status(raw) == expected


@pytest.mark.parametrize(
    "record",
    [
        {
            "id": "w1",
            "mimeType": "application/x-dotnet-dll",
            "topics": ["cmd"],
            "createdAt": "2026-01-01T00:00:00Z",
            "status": "RUNNING",
            "tags": {"created-by": "alpaca-md"},
        },
        {
            "id": "w1",
            "mime_type": "application/x-dotnet-dll",
            "topic": "cmd",
            "created_at": "2026-01-01T00:00:00Z",
            "status": 2,
            "tags": {"created-by": "alpaca-md"},
        },
    ],
    ids=["camelCase", "snake_case-legacy-topic"],
)
def test_list_workers_parses_both_key_styles(record: dict[str, Any]) -> None:
    workers = client_for(lambda r: ok({"workers": [record]})).list_workers()
    assert len(workers) == 1
    worker = workers[0]
    assert (worker.id, worker.status, worker.topics) == ("w1", "RUNNING", ("cmd",))
    assert worker.mime_type == "application/x-dotnet-dll"
    assert worker.created_at == "2026-01-01T00:00:00Z"
    assert worker.tags == {"created-by": "alpaca-md"}
    assert worker.running


def test_missing_keys_take_defaults() -> None:
    assert client_for(lambda r: ok({})).list_workers() == []
    worker = parse_worker({"id": "w2"})
    assert (worker.status, worker.topics, worker.tags, worker.created_at) == (
        "UNSPECIFIED",
        (),
        {},
        None,
    )


def test_empty_response_data_is_an_empty_object() -> None:
    gateway = client_for(lambda r: httpx.Response(200, json={"success": True, "status": "OK"}))
    assert gateway.invoke("workmanager", "StartWorker", {"id": "x"}) == {}


class FakeWorkManager:
    """CreateWorker as an older (``topic``) or current (``topics``) platform answers it."""

    def __init__(self, *, legacy: bool, schema: bool) -> None:
        self.legacy = legacy
        self.schema = schema
        self.creates: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if "/schema/" in request.url.path:
            if not self.schema:
                return httpx.Response(404, json={"error": "not found"})
            name = "topic" if self.legacy else "topics"
            return httpx.Response(200, json={"fields": [{"name": "code_source"}, {"name": name}]})
        _, method, data = body_of(request)
        assert method == "CreateWorker"
        self.creates.append(data)
        if self.legacy and "topics" in data:
            return refused("INVALID_ARGUMENT", "unknown field: topics")
        return ok({"id": f"w{len(self.creates)}"})


@pytest.mark.parametrize(
    ("legacy", "schema", "creates", "field"),
    [
        pytest.param(False, True, 1, "topics", id="current"),
        pytest.param(False, False, 1, "topics", id="current-no-schema"),
        pytest.param(True, True, 1, "topic", id="legacy-schema-says-so"),
        pytest.param(True, False, 2, "topic", id="legacy-rejects-topics"),
    ],
)
def test_create_worker_falls_back_to_topic(
    legacy: bool, schema: bool, creates: int, field: str
) -> None:
    fake = FakeWorkManager(legacy=legacy, schema=schema)
    created = client_for(fake).create_worker(
        topics=["cmd.topic"], content=b"PK\x03\x04zip", tags={"created-by": "alpaca-md"}
    )
    assert created.topic_field == field
    assert len(fake.creates) == creates
    last = fake.creates[-1]
    assert last["code_source"] == {"content": base64.b64encode(b"PK\x03\x04zip").decode()}
    assert last["mime_type"] == "application/x-dotnet-dll"
    assert last["tags"] == {"created-by": "alpaca-md"}
    if field == "topic":
        assert last["topic"] == "cmd.topic" and "topics" not in last
    else:
        assert last["topics"] == ["cmd.topic"]


def test_create_worker_other_invalid_argument_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/schema/" in request.url.path:
            return httpx.Response(404)
        calls.append(1)
        return refused("INVALID_ARGUMENT", "code source content is empty")

    with pytest.raises(CommandRefused, match="content is empty"):
        client_for(handler).create_worker(topics=["t"], url="https://x/worker.zip")
    assert len(calls) == 1


def test_health_and_discovery() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "Healthy", "entries": {}})
        if request.url.path == "/v1/gateway/list-services":
            return httpx.Response(200, json={"services": ["workmanager", "websocketmanager"]})
        return httpx.Response(404)

    gateway = client_for(handler)
    assert gateway.health()["status"] == "Healthy"
    assert gateway.list_services() == ["workmanager", "websocketmanager"]
    assert gateway.schema("workmanager", "Nope") is None


def test_connections_parse_leniently() -> None:
    record = {"Id": "c1", "Url": "ws://x", "Status": "connected", "Topic": "t", "instanceId": "i"}
    (conn,) = client_for(lambda r: ok({"connections": [record]})).list_connections()
    assert (conn.id, conn.url, conn.status, conn.topic, conn.instance_id) == (
        "c1",
        "ws://x",
        "CONNECTED",
        "t",
        "i",
    )
    assert conn.publishing


def _entry(status: str, description: str = "") -> dict[str, Any]:
    return {"status": status, "description": description, "data": {}}


def _health_503(entries: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"status": "Unhealthy", "entries": entries})

    return handler


@pytest.mark.parametrize(
    "keys_entry",
    [
        pytest.param({"api-keys": _entry("Unhealthy", "No API keys are configured")}, id="name"),
        pytest.param({"auth": _entry("Unhealthy", "No API key configured")}, id="description"),
        pytest.param({"ApiKeys": _entry("Unhealthy")}, id="camel-name"),
    ],
)
def test_unhealthy_only_for_missing_api_keys_is_a_warning(keys_entry: dict[str, Any]) -> None:
    entries = {"dapr": _entry("Healthy"), "grpc-channel-pool": _entry("Healthy"), **keys_entry}
    health = client_for(_health_503(entries)).check_health()
    assert not health.healthy and health.only_missing_keys
    assert health.warning is not None
    assert "no API keys configured" in health.warning
    assert "dapr: Healthy" in health.warning  # the entries are shown


def test_unhealthy_for_another_reason_is_still_unreachable() -> None:
    entries = {"dapr": _entry("Unhealthy", "Dapr is down"), "api-keys": _entry("Unhealthy")}
    with pytest.raises(GatewayUnreachable) as info:
        client_for(_health_503(entries)).health()
    assert "HTTP 503" in str(info.value) and "dapr" in str(info.value)
    assert info.value.exit_code == ExitCode.UNREACHABLE


def test_a_healthy_gateway_has_no_warning() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"status": "Healthy", "entries": {"dapr": _entry("Healthy")}}
        )

    health = client_for(handler).check_health()
    assert health.healthy and health.warning is None and health.failing == []
