"""``alpaca-md build``: package the WebSocketManagerController worker with ``dotnet publish``.

The step (:func:`build_worker`) runs ``dotnet publish <project> -c Release -o <dir>``, checks
that the project's ``PackageWorker`` target left ``<dir>/worker.zip``, and records its path and
sha256 in the state file so that ``deploy`` can send exactly what was built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alpaca_cli.runtime import Runtime

DEFAULT_OUTPUT = Path("build") / "worker"
PACKAGE_NAME = "worker.zip"
_TAIL_LINES = 15
NO_DOTNET_HINT = (
    "Install the .NET SDK (https://dotnet.microsoft.com/download, or your package manager's "
    "dotnet-sdk-8.0), or skip the build: `alpaca-md deploy --package worker.zip` sends a prebuilt "
    "package, `alpaca-md deploy --package-url URL` a package the platform can download."
)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What ``build`` produced."""

    project: str
    output_dir: str
    package_path: str
    package_sha256: str
    package_size: int


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (packages can be tens of MB)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_worker(
    rt: Runtime, *, project: str | None = None, output_dir: Path | None = None
) -> BuildResult:
    """Run ``dotnet publish`` and record the package in the state file.

    Args:
        project: project directory or file; default the config's ``project`` (settings/env).
        output_dir: where ``dotnet publish`` writes; default ``build/worker`` (cwd-relative).

    Raises:
        UsageError: no project, no ``dotnet`` on PATH, the build failed, or no worker.zip.
        StateError: the state file is corrupt or locked.
    """
    import shutil
    import subprocess
    from collections import deque

    from alpaca_cli.errors import UsageError
    from alpaca_cli.state import BuildRecord

    chosen = project or rt.config.project
    if not chosen:
        raise UsageError(
            "No worker project to build.",
            hint="Pass --project DIR (the examples repository's "
            "dotnet/Virtufin.Examples.WebSocketManagerController/), set ALPACA_MD_PROJECT, "
            'or add "project" to the settings file.',
        )
    project_path = Path(chosen)
    if not project_path.exists():
        raise UsageError(
            f"Project {chosen} does not exist.",
            hint="Pass --project with the directory holding the worker's .csproj.",
        )
    dotnet = shutil.which("dotnet")
    if dotnet is None:
        raise UsageError(
            "`dotnet` is not on PATH, so the worker cannot be built.", hint=NO_DOTNET_HINT
        )
    out = (output_dir or DEFAULT_OUTPUT).absolute()
    argv = [dotnet, "publish", str(project_path), "-c", "Release", "-o", str(out)]
    rt.progress(f"Building {chosen} with dotnet publish -> {out}")
    rt.log("running " + " ".join(argv))

    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise UsageError(f"Cannot run {dotnet}: {exc.strerror}.", hint=NO_DOTNET_HINT) from exc
    assert process.stdout is not None  # guaranteed by stdout=PIPE
    with process:
        for line in process.stdout:
            tail.append(line.rstrip())
            rt.log(f"dotnet: {line.rstrip()}")
    if process.returncode != 0:
        shown = " | ".join(x for x in tail if x.strip())
        raise UsageError(
            f"dotnet publish failed with exit code {process.returncode}: {shown}",
            hint="Fix the build (run it with -v to see all of its output).",
        )
    package = out / PACKAGE_NAME
    if not package.is_file():
        raise UsageError(
            f"dotnet publish succeeded but did not write {package}.",
            hint="The project needs the PackageWorker MSBuild target that writes worker.zip "
            "(see the WebSocketManagerController example).",
        )
    digest = sha256_of(package)
    with rt.store.transaction() as state:
        state.build = BuildRecord(
            project=str(chosen), package_path=str(package), package_sha256=digest
        )
    rt.progress(f"Built {package} (sha256 {digest[:12]}...)")
    return BuildResult(
        project=str(chosen),
        output_dir=str(out),
        package_path=str(package),
        package_sha256=digest,
        package_size=package.stat().st_size,
    )
