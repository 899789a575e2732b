"""``alpaca-md auth`` end to end: the local Alpaca server answers through the WSM and the topic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alpaca_cli.state import StateStore
from tests.support import Cli, free_port
from tests.support_pubsub import connect_and_publish, ok


def test_auth_on_a_publishing_connection_reports_authenticated(deployed: Cli) -> None:
    connection_id = connect_and_publish(deployed)
    result = ok(deployed("auth", "--json"))
    doc = json.loads(result.stdout)
    assert doc == {
        "connection_id": connection_id,
        "verified": True,
        "message": "authenticated",
        "topic": "alpaca-ticks",
    }
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.authenticated_at is not None


def test_auth_without_publishing_sends_but_cannot_verify(deployed: Cli) -> None:
    ok(deployed("connect"))
    result = ok(deployed("auth"))
    assert result.stdout.strip() == "sent"
    assert "alpaca-md publish" in result.stderr
    state = StateStore(deployed.state_path).read()
    assert state is not None and state.authenticated_at is None


def test_wrong_secret_is_refused_credentials_with_402(deployed: Cli) -> None:
    connect_and_publish(deployed)
    result = deployed("auth", env={"ALPACA_API_SECRET": "not-the-secret"})
    assert result.exit_code == 4, result.stderr
    assert "402" in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout


def test_a_second_connection_with_the_same_key_is_refused_with_406(
    deployed: Cli, tmp_path: Path
) -> None:
    connect_and_publish(deployed)
    ok(deployed("auth"))
    other = ["--state", str(tmp_path / "other.json")]
    ok(deployed("connect", *other))
    ok(deployed("publish", *other))
    result = deployed("auth", *other)
    try:
        assert result.exit_code == 4, result.stderr
        assert "406" in result.stderr
    finally:
        deployed("teardown", *other)


def test_missing_keys_fail_before_anything_is_sent(cli: Cli) -> None:
    # No platform at all: a usage error (2), not "sidecar unreachable" (3), proves no attempt.
    env = {"DAPR_HTTP_PORT": str(free_port()), "DAPR_GRPC_PORT": str(free_port())}
    result = cli("auth", env={**env, "ALPACA_API_KEY": "only-the-key"})
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("Error: ALPACA_API_SECRET not set; nothing was sent.")
    both = cli("auth", env=env)
    assert both.exit_code == 2
    assert "ALPACA_API_KEY and ALPACA_API_SECRET not set" in both.stderr


def test_keys_from_a_dotenv_file_are_used(deployed: Cli, embedded_with_feed: Any) -> None:
    env = embedded_with_feed.env()
    (deployed.cwd / ".env").write_text(
        f"ALPACA_API_KEY={env['ALPACA_API_KEY']}\nALPACA_API_SECRET={env['ALPACA_API_SECRET']}\n"
    )
    connect_and_publish(deployed)
    result = deployed("auth", env={"ALPACA_API_KEY": "", "ALPACA_API_SECRET": ""})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "authenticated"


def test_auth_without_a_connection_is_a_usage_error(feed_cli: Cli) -> None:
    result = feed_cli("auth")
    assert result.exit_code == 2
    assert "alpaca-md connect" in result.stderr
