"""The runtime: diagnostics are redacted and levelled, clients are lazy and closed with it."""

from __future__ import annotations

import base64
import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from alpaca_cli.config import ConfigOptions, load_config
from alpaca_cli.runtime import Invocation, Runtime


def make(tmp_path: Path, verbose: int, **environ: str) -> tuple[Runtime, io.StringIO]:
    config = load_config(ConfigOptions(), environ=environ, cwd=tmp_path)
    err = io.StringIO()
    return Runtime(config, verbose=verbose, stderr=err), err


def test_log_is_silent_below_its_level_and_redacts_every_secret(tmp_path: Path) -> None:
    rt, err = make(tmp_path, 1, ALPACA_API_SECRET="s3cret-value-42", VIRTUFIN_API_KEY="vk-0000")
    rt.log("hidden at level 2", level=2)
    auth = json.dumps({"action": "auth", "key": "AK1", "secret": "s3cret-value-42"})
    rt.log(f"send_raw message={base64.b64encode(auth.encode()).decode()} key=vk-0000")
    rt.warn("vk-0000 refused")
    rt.progress("progress with s3cret-value-42")
    text = err.getvalue()
    assert "hidden at level 2" not in text
    assert "s3cret-value-42" not in text and "vk-0000" not in text
    assert text.count("[REDACTED]") == 4
    assert "Warning: [REDACTED] refused" in text


def test_the_gateway_client_is_built_once_with_the_key_header(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "Healthy"})

    config = load_config(
        ConfigOptions(api_url="http://gw.test:1"),
        environ={"VIRTUFIN_API_KEY": "vk-1"},
        cwd=tmp_path,
    )
    client = httpx.Client(transport=httpx.MockTransport(handler))
    with Runtime(config, http_client=client) as rt:
        assert rt.gateway() is rt.gateway()
        rt.gateway().health()
    assert seen[0].url == "http://gw.test:1/health"
    assert seen[0].headers["x-api-key"] == "vk-1"
    assert not client.is_closed  # an injected client belongs to the caller


def test_entered_contexts_close_with_the_runtime(tmp_path: Path) -> None:
    events: list[str] = []

    @contextmanager
    def resource() -> Any:
        events.append("open")
        yield "r"
        events.append("close")

    rt, _ = make(tmp_path, 0)
    with rt:
        assert rt.enter_context(resource()) == "r"
        rt.callback(events.append, "callback")
        assert events == ["open"]
    assert events == ["open", "callback", "close"]


def test_invocation_open_logs_sources_at_v(tmp_path: Path, capsys: Any) -> None:
    invocation = Invocation(ConfigOptions(topic="t1"), verbose=1)
    with invocation.open(environ={}, cwd=tmp_path) as rt:
        assert rt.config.topic == "t1"
    assert "setting topic = t1  [--topic]" in capsys.readouterr().err
