"""Every gRPC status a bus can answer with maps to a documented exit code (httpx's
``test_httpcore_all_exceptions_mapped`` idea): a new or unmapped status must not exit 1."""

from __future__ import annotations

import grpc
import pytest

from alpaca_cli.config import DaprSettings
from alpaca_cli.errors import GRPC_STATUS_EXIT, AlpacaMdError, ExitCode
from alpaca_cli.platform.pubsub import PubsubClient


class FakeRpcError(grpc.RpcError):
    """What grpc raises: an RpcError whose ``code()`` and ``details()`` say what failed."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"detail of {self._code.name}"


def test_every_grpc_status_code_is_in_the_table() -> None:
    assert {code.name for code in grpc.StatusCode} == set(GRPC_STATUS_EXIT)


def test_only_ok_maps_to_the_bug_exit_code() -> None:
    assert [name for name, code in GRPC_STATUS_EXIT.items() if code == ExitCode.INTERNAL] == ["OK"]


@pytest.mark.parametrize(
    "code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name
)
def test_the_dapr_bus_maps_every_status_to_its_documented_exit_code(code: grpc.StatusCode) -> None:
    client = PubsubClient(DaprSettings())
    error = client.map_error(FakeRpcError(code), action="publishing to topic 't'")
    assert isinstance(error, AlpacaMdError)
    assert error.exit_code == GRPC_STATUS_EXIT[code.name]
    assert error.exit_code in set(ExitCode) - {ExitCode.INTERNAL}
    assert "\n" not in str(error)
