"""``tail`` meets hostile frames and slow readers (issue 11, holes 8, 17 and 18), through the real
sidecar and a real ``tail`` process."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from alpaca_cli.config import DaprSettings
from alpaca_cli.platform.pubsub import PubsubClient

pytestmark = pytest.mark.timeout(120)


def publisher(platform: Any) -> PubsubClient:
    env = platform.env()
    return PubsubClient(
        DaprSettings(http_port=int(env["DAPR_HTTP_PORT"]), grpc_port=int(env["DAPR_GRPC_PORT"]))
    )


DEEP = b"[" * 300 + b"1" + b"]" * 300
"""300 levels: orjson decodes up to 1024 but encodes only 254 (so it is written by hand)."""
TRADE = {"T": "t", "S": "BTC/USD", "i": 1, "p": 100.5, "s": 0.25, "t": "2026-01-01T00:00:00Z"}
HOSTILE = [
    pytest.param(b'[{"T":"zz","x":' + DEEP + b"}]", id="unknown-type"),
    pytest.param(orjson.dumps([TRADE])[:-2] + b',"x":' + DEEP + b"}]", id="trade-with-deep-extra"),
]


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("message", HOSTILE)
def test_a_frame_nested_300_deep_is_a_decode_error_line_and_tail_goes_on(
    spawn: Any, platform: Any, output: str, message: bytes, request: Any
) -> None:
    topic = f"hostile-{request.node.callspec.id}"
    proc = spawn(
        ["tail", "--topic", topic, "--count", "2", "--output", output, "--bus", "dapr"],
        platform.env(),
    )
    proc.wait_for_line("Tailing topic")
    with publisher(platform) as client:
        client.publish(topic, message, type="frame")
        client.publish(topic, orjson.dumps([TRADE]), type="frame")
    assert proc.wait() == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    if output == "json":
        docs = [orjson.loads(line) for line in lines]
        assert "cannot re-encode" in docs[0]["error"]
        assert docs[1]["message"]["T"] == "t"
    elif message.startswith(b'[{"T":"t"'):  # text needs no re-encoding: a trade is a trade
        assert lines[0].split("\t")[1:3] == ["trade", "BTC/USD"]
    else:
        assert "[decode-error]" in lines[0] and "cannot re-encode" in lines[0]
        assert lines[1].split("\t")[1:3] == ["trade", "BTC/USD"]
