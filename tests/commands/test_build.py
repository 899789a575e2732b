"""``alpaca-md build`` with a fake ``dotnet`` on PATH (the real SDK is not needed for tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support import Cli


def test_build_runs_dotnet_publish_and_records_path_and_digest(
    cli: Cli, fake_dotnet: dict[str, str], tmp_path: Path
) -> None:
    result = cli("build", "--project", "proj", "--json", env=fake_dotnet)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    package = cli.cwd / "build" / "worker" / "worker.zip"
    assert out["package_path"] == str(package)
    assert out["package_sha256"] == hashlib.sha256(b"PK-fake-worker-zip").hexdigest()
    argv = (tmp_path / "dotnet.log").read_text().split()
    assert argv == ["publish", "proj", "-c", "Release", "-o", str(cli.cwd / "build" / "worker")]
    assert "Building proj" in result.stderr
    state = json.loads(cli.state_path.read_text())
    assert state["build"]["package_sha256"] == out["package_sha256"]
    assert state["build"]["package_path"] == str(package)


def test_project_from_the_settings_file_and_custom_output(
    cli: Cli, fake_dotnet: dict[str, str]
) -> None:
    (cli.cwd / "settings").mkdir()
    (cli.cwd / "settings" / "alpaca.json").write_text(json.dumps({"project": "proj"}))
    result = cli("build", "-o", "out", env=fake_dotnet)
    assert result.exit_code == 0, result.stderr
    path, digest = result.stdout.strip().split("\t")
    assert path == str(cli.cwd / "out" / "worker.zip")
    assert len(digest) == 64


def test_no_dotnet_on_path_says_how_to_get_it(cli: Cli) -> None:
    (cli.cwd / "proj").mkdir()
    result = cli("build", "--project", "proj", env={"PATH": str(cli.cwd / "empty-bin")})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "`dotnet` is not on PATH" in result.stderr
    assert ".NET SDK" in result.stderr
    assert "deploy --package" in result.stderr and "--package-url" in result.stderr


def test_a_failed_build_shows_the_end_of_its_output(cli: Cli, fake_dotnet: dict[str, str]) -> None:
    result = cli("build", "--project", "proj", env={**fake_dotnet, "FAKE_DOTNET_MODE": "fail"})
    assert result.exit_code == 2
    assert "dotnet publish failed with exit code 1" in result.stderr
    assert "CS1002" in result.stderr
    assert not cli.state_path.exists()


def test_a_build_without_worker_zip_is_an_error(cli: Cli, fake_dotnet: dict[str, str]) -> None:
    result = cli("build", "--project", "proj", env={**fake_dotnet, "FAKE_DOTNET_MODE": "nozip"})
    assert result.exit_code == 2
    assert "worker.zip" in result.stderr and "PackageWorker" in result.stderr


def test_no_project_configured(cli: Cli, fake_dotnet: dict[str, str]) -> None:
    result = cli("build", env=fake_dotnet)
    assert result.exit_code == 2
    assert "No worker project" in result.stderr and "--project" in result.stderr


def test_missing_project_directory(cli: Cli, fake_dotnet: dict[str, str]) -> None:
    result = cli("build", "--project", "nope", env=fake_dotnet)
    assert result.exit_code == 2
    assert "nope does not exist" in result.stderr
