"""``run`` refuses to start without Alpaca keys, before it builds or deploys anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpaca_cli.main import app

pytestmark = pytest.mark.timeout(60)


def test_run_without_keys_exits_2_before_reaching_the_gateway(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback answers nothing: any gateway call would end in exit 3.
    empty = tmp_path / "empty.env"  # not ./.env, which may hold a developer's keys
    empty.write_text("")
    args = ["run", "--no-build", "--api-url", "http://127.0.0.1:9"]
    args += ["--state", str(tmp_path / "state.json"), "--env-file", str(empty)]
    result = CliRunner().invoke(app, args, env={"NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 2, result.output
    assert "ALPACA_API_KEY and ALPACA_API_SECRET not set; nothing was deployed." in result.stderr
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize("where", ["afile/report.json", "adir"])
def test_an_unwritable_report_path_exits_2_before_anything_runs(tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("a file, not a directory")
    (tmp_path / "adir").mkdir()
    args = ["run", "--no-build", "--api-url", "http://127.0.0.1:9"]
    args += ["--state", str(tmp_path / "state.json"), "--report", str(tmp_path / where)]
    env = {"NO_COLOR": "1", "TERM": "dumb", "ALPACA_API_KEY": "k", "ALPACA_API_SECRET": "s"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert f"Error: --report {tmp_path / where}:" in result.stderr
    assert "deploy" not in result.stderr
    assert not (tmp_path / "state.json").exists()
