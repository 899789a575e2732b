"""``tail`` meets hostile frames and slow readers (issue 11, holes 8, 17 and 18), through the real
sidecar and a real ``tail`` process."""

from __future__ import annotations

import signal
from typing import Any

import orjson
import pytest

from alpaca_cli.config import DaprSettings
from alpaca_cli.platform.pubsub import PubsubClient
from tests.support import child_env

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


@pytest.mark.parametrize("layout", ["compact", "pretty"])
@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("message", HOSTILE)
def test_a_frame_nested_300_deep_is_a_decode_error_line_and_tail_goes_on(
    spawn: Any, platform: Any, output: str, message: bytes, layout: str, request: Any
) -> None:
    """JSON output writes a compact frame's message bytes as they came, deep or not; a frame
    that must be re-encoded (here: one with a line break) becomes a decode-error line."""
    is_trade = message.startswith(b'[{"T":"t"')
    if layout == "pretty":
        message = message.replace(b"[{", b"[\n{", 1)
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
        if layout == "pretty":
            assert "cannot re-encode" in docs[0]["error"]
        else:
            assert lines[0].encode().endswith(b',"message":' + message[1:-1] + b"}")
        assert docs[1]["message"]["T"] == "t"
    elif is_trade:  # text needs no re-encoding: a trade is a trade
        assert lines[0].split("\t")[1:3] == ["trade", "BTC/USD"]
    else:
        assert "[decode-error]" in lines[0] and "cannot re-encode" in lines[0]
        assert lines[1].split("\t")[1:3] == ["trade", "BTC/USD"]


class StalledTail:
    """``alpaca-md tail`` whose stdout nobody reads (a stalled ``| less``); stderr is read."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Any) -> None:
        import subprocess
        import sys
        import threading

        full = child_env(env, unbuffered=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alpaca_cli", "tail", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._changed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str) -> str:
        with self._changed:
            self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or not self._reader.is_alive(),
                timeout=60,
            )
            found = next((line for line in self.lines if text in line), None)
        assert found is not None, "\n".join(self.lines)
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def trades_frame(first_id: int, n: int = 200) -> bytes:
    return orjson.dumps([{**TRADE, "i": first_id + k} for k in range(n)])


def test_a_stalled_stdout_reader_keeps_tail_within_its_byte_budget(
    platform: Any, tmp_path: Any
) -> None:
    budget = 65536
    topic = "stalled-reader"
    tail = StalledTail(
        ["--topic", topic, "--bus", "dapr", "--max-buffer", str(budget)], platform.env(), tmp_path
    )
    try:
        tail.wait_for("Tailing topic")
        with publisher(platform) as client:
            # ~14 KB of output per frame: the pipe (64 KiB) and the budget fill within a few.
            for n in range(40):
                client.publish(topic, trades_frame(n * 200), type="frame")
            warning = tail.wait_for("stdout is not keeping up")
            assert "s behind" in warning and f"--max-buffer {budget}" in warning
            for n in range(40, 400):  # ten times as much again: memory must not follow
                client.publish(topic, trades_frame(n * 200), type="frame")
        # SIGTERM with stdout still stalled: the unwritten rest gets a bounded drain.
        tail.proc.send_signal(signal.SIGTERM)
        assert tail.proc.wait(timeout=30) == 130, "\n".join(tail.lines)
        summary = tail.wait_for("messages were dropped")
        dropped = int(summary.split("Warning: ")[1].split()[0])
        peak = int(summary.split("peak buffer ")[1].split()[0])
        # Bounded: what was held never exceeded the budget, and the excess was counted.
        assert dropped > 0 and peak <= budget, summary
        assert "Traceback" not in "\n".join(tail.lines)
    finally:
        tail.close()
