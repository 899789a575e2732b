"""The pub/sub client against the devstack sidecar, through the real dapr SDK over loopback."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from alpaca_cli.config import DaprSettings, Secret, load_config
from alpaca_cli.errors import CredentialsRefused, ExitCode, SidecarUnreachable, UsageError
from alpaca_cli.platform.pubsub import DEFAULT_HEALTH_TIMEOUT, PubsubClient, open_pubsub
from tests.support import free_port
from tests.support_pubsub import Sidecar


def test_published_cloudevent_keeps_our_id_type_source_and_extensions(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as client, client.subscribe("t.roundtrip") as sub:
        event_id = client.publish(
            "t.roundtrip",
            {"command": "list"},
            type="com.example.command",
            id="my-id",
            extensions={"correlationid": "c-1"},
        )
        event = sub.get(timeout=10)
    assert event is not None
    assert event_id == "my-id"
    assert (event.id, event.type, event.source) == ("my-id", "com.example.command", "alpaca-md")
    assert event.extensions["correlationid"] == "c-1"
    assert orjson.loads(event.data) == {"command": "list"}
    assert event.received_ns > 0


def test_bytes_data_arrives_unchanged(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as client, client.subscribe("t.bytes") as sub:
        client.publish("t.bytes", b'[{"T":"success","msg":"connected"}]', type="x")
        event = sub.get(timeout=10)
    assert event is not None
    assert event.data == b'[{"T":"success","msg":"connected"}]'


def test_get_returns_none_when_nothing_arrives_in_time(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as client, client.subscribe("t.quiet") as sub:
        assert sub.get(timeout=0.2) is None
        assert not sub.pending()


def test_events_arrive_in_order_and_are_acknowledged(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as client, client.subscribe("t.order") as sub:
        for n in range(50):
            client.publish("t.order", {"n": n}, type="x")
        seen: list[int] = []
        while len(seen) < 50:
            event = sub.get(timeout=10)
            assert event is not None
            seen.append(orjson.loads(event.data)["n"])
    assert seen == list(range(50))


def test_a_stalled_consumer_holds_a_bounded_number_of_bytes_and_loses_nothing(
    sidecar: Sidecar,
) -> None:
    import time

    from alpaca_cli.platform.bus import QUEUE_BYTES

    size, count = 1024 * 1024, 20
    with PubsubClient(sidecar.settings) as client, client.subscribe("t.big") as sub:
        for n in range(count):
            client.publish("t.big", bytes([n]) * size, type="x")
        # Nobody calls get(): the reader may take events off the stream only up to the budget.
        last, still = -1, 0
        while still < 5:
            time.sleep(0.1)
            still = still + 1 if sub.received == last else 0
            last = sub.received
        assert sub.received <= QUEUE_BYTES // size + 1 < count
        seen = []
        while len(seen) < count:
            event = sub.get(timeout=10)
            assert event is not None
            seen.append(event.data[0])
    assert seen == list(range(count))


def test_close_from_another_thread_ends_iteration(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings) as client:
        sub = client.subscribe("t.close")
        threading.Timer(0.2, sub.close).start()
        assert list(sub) == []
        with pytest.raises(EOFError):
            sub.get(timeout=0)


def test_unknown_pubsub_is_a_usage_error_naming_the_option(sidecar: Sidecar) -> None:
    with PubsubClient(sidecar.settings, pubsub="nope") as client:
        with pytest.raises(UsageError) as info:
            client.subscribe("t.x")
        assert "--pubsub" in str(info.value)
        assert "pubsub nope is not found" in str(info.value)
        with pytest.raises(UsageError):
            client.publish("t.x", {}, type="x")
    assert info.value.exit_code == ExitCode.USAGE


def test_wrong_api_token_is_refused_credentials() -> None:
    from alpaca_cli.devstack.broker import Broker
    from alpaca_cli.devstack.loopthread import LoopThread
    from alpaca_cli.devstack.sidecar import DaprSidecar

    with LoopThread() as loop:
        car = DaprSidecar(Broker(), api_token="right-token")
        loop.run(car.start())
        try:
            settings = DaprSettings(
                http_port=car.http_port, grpc_port=car.grpc_port, api_token=Secret("wrong")
            )
            with PubsubClient(settings) as client, pytest.raises(CredentialsRefused) as info:
                client.publish("t", {}, type="x")
            assert "DAPR_API_TOKEN" in str(info.value)
            assert "wrong" not in str(info.value)
        finally:
            loop.run(car.stop())


def test_no_sidecar_is_unreachable_with_url_and_hint_and_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = DaprSettings(http_port=free_port(), grpc_port=free_port(), health_timeout=0.3)
    client = PubsubClient(settings)
    with pytest.raises(SidecarUnreachable) as info:
        client.connect()
    error = info.value
    assert error.exit_code == ExitCode.UNREACHABLE
    assert error.url == settings.http_url
    assert "dapr run --app-id" in str(error) and "alpaca-md dev up" in str(error)
    assert capsys.readouterr().out == ""


def test_sdk_diagnostics_go_to_our_log_not_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    settings = DaprSettings(http_port=free_port(), grpc_port=free_port(), health_timeout=0.3)
    with pytest.raises(SidecarUnreachable):
        PubsubClient(settings, log=lines.append).connect()
    assert capsys.readouterr().out == ""
    assert any("Health check" in line for line in lines)


def test_health_wait_is_short_unless_the_user_set_it(tmp_path: Path) -> None:
    def wait(environ: dict[str, str]) -> float:
        return open_pubsub(load_config(environ=environ, cwd=tmp_path)).health_timeout

    assert wait({}) == DEFAULT_HEALTH_TIMEOUT
    assert wait({"DAPR_HEALTH_TIMEOUT": "7"}) == 7.0
    # The SDK's own default, set on purpose, is no longer taken for "not set".
    assert wait({"DAPR_HEALTH_TIMEOUT": "60"}) == 60.0


def test_a_health_timeout_from_the_env_file_counts_too(tmp_path: Path) -> None:
    """Only ``os.environ`` used to count when the value was 60: a ``.env`` was ignored."""
    (tmp_path / ".env").write_text("DAPR_HEALTH_TIMEOUT=60\n")
    config = load_config(environ={}, cwd=tmp_path)
    assert config.sources["dapr.health_timeout"].startswith(".env file ")
    assert open_pubsub(config).health_timeout == 60.0


def test_a_client_built_from_bare_settings_takes_their_value() -> None:
    assert PubsubClient(DaprSettings(health_timeout=7.0)).health_timeout == 7.0
