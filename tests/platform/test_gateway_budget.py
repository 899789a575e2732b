"""A gateway that accepts and never answers must not hold ``run``'s teardown past CI's window."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from alpaca_cli.errors import GatewayUnreachable
from alpaca_cli.platform.gateway import GatewayClient

pytestmark = pytest.mark.timeout(60)


@dataclass
class SilentGateway:
    """Accepts connections and reads requests on loopback, never answers."""

    sock: socket.socket
    requests: int = 0
    conns: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.requests += data.count(b"POST /v1/gateway/invoke-json")


@pytest.fixture
def silent() -> Iterator[SilentGateway]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = SilentGateway(sock)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        sock.close()
        for conn in server.conns:
            conn.close()
        thread.join(timeout=5)


def test_a_short_timeout_client_gives_up_on_a_silent_gateway(silent: SilentGateway) -> None:
    # The long client would wait 600 s (beyond this test's own timeout); the short one 0.2 s.
    with GatewayClient(silent.url, timeout=600) as long_client:
        short = long_client.with_timeout(0.2)
        with pytest.raises(GatewayUnreachable) as info:
            short.list_workers()
    assert "did not answer within 0.2 s" in str(info.value)


def test_a_budget_bounds_all_calls_together(silent: SilentGateway) -> None:
    with GatewayClient(silent.url, timeout=600, api_key="secret-key") as long_client:
        bounded = long_client.with_timeout(0.2, budget=0.5)
        errors = []
        for _ in range(10):  # 10 x 0.2 s would be 2 s: far more than the budget
            with pytest.raises(GatewayUnreachable) as info:
                bounded.stop_worker("w-1")
            errors.append(str(info.value))
    assert "0.5 s allowed for these calls are spent" in errors[-1]
    assert 1 <= silent.requests < 10  # once spent, nothing more is sent


def test_the_short_client_leaves_the_shared_connection_pool_open(silent: SilentGateway) -> None:
    with GatewayClient(silent.url, timeout=600) as long_client:
        short = long_client.with_timeout(0.2)
        short.close()
        with pytest.raises(GatewayUnreachable, match=r"within 0\.2 s"):
            short.list_workers()  # closing the view did not close the shared httpx client
