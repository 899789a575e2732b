"""Start-up: how long a script waits for ``alpaca-md`` before it does anything.

Wall time of fresh subprocesses (median of ``runs``), interleaved so drift hits all alike:
``alpaca-md --help``, ``alpaca-md --json list`` (when a running platform's environment is
given), the ``--help`` of a bare two-command Typer app on the same Typer (and, when a venv with
Typer 0.29 is available, on 0.29 too), and ``python -c pass``. Ratios are to the bare Typer app
on our pinned Typer. It also records which heavy modules ``--help`` loads and the top
``-X importtime`` offenders, which is what to read when the ratio is off.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BARE_TYPER_APP",
    "BARE_TYPER_APP_PLAIN",
    "HEAVY_MODULES",
    "heavy_modules_loaded",
    "import_offenders",
    "run",
]

HEAVY_MODULES = ("dapr", "grpc", "httpx", "pydantic")
"""What ``--help`` must not load (issue 6, start-up target)."""

TYPER029_ENV = "BENCH_TYPER029_VENV"
"""Env var naming a venv with typer 0.29 installed; default ``/tmp/typer029`` when it exists."""

BARE_TYPER_APP = '''\
import typer

app = typer.Typer()


@app.command()
def hello(name: str) -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def goodbye(name: str, formal: bool = False) -> None:
    """Say goodbye."""
    print(f"goodbye {name}")


if __name__ == "__main__":
    app()
'''

BARE_TYPER_APP_PLAIN = BARE_TYPER_APP.replace(
    "typer.Typer()", "typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)"
)
"""The same app with the two switches alpaca-md sets, to compare like with like."""

_HELP_PROBE = """\
import json, sys
sys.argv = ["alpaca-md", "--help"]
from alpaca_cli.main import main
try:
    main()
except SystemExit:
    pass
heavy = {HEAVY!r}
tops = sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
sys.stderr.write("\\nBENCH-MODULES " + json.dumps(tops) + "\\n")
"""


def _venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _time_once(argv: Sequence[str], env: Mapping[str, str] | None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {' | '.join(tail)}")
    return dt


def _typer029_python() -> str | None:
    venv = os.environ.get(TYPER029_ENV) or "/tmp/typer029"
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import typer, importlib.metadata as m; print(m.version('typer'))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return str(python) if probe.returncode == 0 and probe.stdout.startswith("0.29") else None


def _typer029_overlay(python: str | None) -> dict[str, str] | None:
    """``PYTHONPATH`` that puts the Typer 0.29 venv's packages in front of ours.

    That runs our real ``alpaca-md --help`` on Typer 0.29 (and that venv's rich, click-free
    Typer deps) without touching the project's venv. Only when the Python versions match.
    """
    if python is None:
        return None
    major_minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(python).parent.parent / "lib" / major_minor / "site-packages"
    return {"PYTHONPATH": str(site)} if (site / "typer").is_dir() else None


def heavy_modules_loaded(env: Mapping[str, str] | None = None) -> list[str]:
    """Top-level packages among :data:`HEAVY_MODULES` that ``alpaca-md --help`` imports."""
    code = _HELP_PROBE.format(HEAVY=HEAVY_MODULES)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH-MODULES "):
            return list(json.loads(line.removeprefix("BENCH-MODULES ")))
    raise RuntimeError(f"help probe failed: {proc.stderr.strip()[-300:]}")


def import_offenders(top: int = 8) -> dict[str, list[dict[str, Any]]]:
    """Where ``alpaca-md --help`` spends its import time (``-X importtime``).

    ``by_cumulative``: imports one or two levels deep (the packages ``alpaca_cli.main`` pulls
    in), slowest first; ``by_self``: single modules whose own body is slowest.
    """
    code = 'import sys; sys.argv=["alpaca-md","--help"]\nfrom alpaca_cli.main import main\n'
    code += "try:\n    main()\nexcept SystemExit:\n    pass\n"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows: list[dict[str, Any]] = []
    for line in proc.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or "cumulative" in line:
            continue
        name = fields[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append(
            {
                "module": name.strip(),
                "depth": depth,
                "self_ms": int(fields[0]) / 1000,
                "cumulative_ms": int(fields[1]) / 1000,
            }
        )
    nested = [r for r in rows if 1 <= r["depth"] <= 2]
    nested.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    by_self = sorted(rows, key=lambda r: r["self_ms"], reverse=True)
    return {"by_cumulative": nested[:top], "by_self": by_self[:top]}


def time_json_list(env: Mapping[str, str], runs: int = 5) -> dict[str, Any]:
    """Median wall time of ``alpaca-md --json list`` against the platform ``env`` points at.

    Called while a platform is up and streaming (the end-to-end benchmark's 1k step), so the
    listing has a worker and a live connection to report.
    """
    times: list[float] = []
    error = None
    for _ in range(runs):
        try:
            times.append(_time_once([_venv_bin("alpaca-md"), "--json", "list"], env))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            break
    return {
        "seconds": round(statistics.median(times), 4) if times else None,
        "runs": len(times),
        "error": error,
    }


def merge_json_list(result: dict[str, Any], timing: dict[str, Any]) -> None:
    """Add a :func:`time_json_list` measurement to a :func:`run` result, with its ratio."""
    seconds = timing.get("seconds")
    if timing.get("error"):
        result["errors"]["alpaca_md_json_list"] = timing["error"]
    if seconds is None:
        return
    result["seconds"]["alpaca_md_json_list"] = seconds
    base = result["seconds"].get("bare_typer_help")
    if base:
        result["ratios"]["alpaca_md_json_list_vs_bare_typer"] = round(seconds / base, 2)
    result["workload"]["cases"]["alpaca_md_json_list"] = (
        f"alpaca-md --json list ({timing['runs']} runs, platform streaming at 1k msg/s)"
    )


def time_to_first_data(runs: int = 3) -> dict[str, Any]:
    """``run --embedded`` from process start to its first data message (median of ``runs``),
    from the run report's ``first_data_since_process_start``, plus the platform step's share."""
    firsts: list[float] = []
    platform: list[float] = []
    error = None
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-ttfd-") as tmp:
            report = Path(tmp) / "report.json"
            argv = [_venv_bin("alpaca-md"), "run", "--embedded", "--duration", "1"]
            done = subprocess.run(
                [*argv, "--report", str(report)],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0 or not report.exists():
                error = f"run --embedded exited {done.returncode}: {done.stderr[-300:]}"
                break
            data = json.loads(report.read_text())
            if data.get("first_data_since_process_start") is not None:
                firsts.append(float(data["first_data_since_process_start"]))
            platform.append(float(data["steps"].get("platform", 0.0)))
    return {
        "seconds": round(statistics.median(firsts), 3) if firsts else None,
        "platform_step_seconds": round(statistics.median(platform), 3) if platform else None,
        "runs": len(firsts),
        "error": error,
    }


def run(runs: int = 7, platform_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Time each command ``runs`` times; ``platform_env`` enables the ``--json list`` case."""
    with tempfile.TemporaryDirectory(prefix="bench-typer-") as tmp:
        bare = Path(tmp) / "bare_typer.py"
        bare.write_text(BARE_TYPER_APP)
        plain = Path(tmp) / "bare_typer_plain.py"
        plain.write_text(BARE_TYPER_APP_PLAIN)
        cases: dict[str, tuple[list[str], Mapping[str, str] | None]] = {
            "python_c_pass": ([sys.executable, "-c", "pass"], None),
            "bare_typer_help": ([sys.executable, str(bare), "--help"], None),
            "bare_typer_plain_help": ([sys.executable, str(plain), "--help"], None),
            "alpaca_md_help": ([_venv_bin("alpaca-md"), "--help"], None),
        }
        if platform_env is not None:
            cases["alpaca_md_json_list"] = (
                [_venv_bin("alpaca-md"), "--json", "list"],
                {**os.environ, **platform_env},
            )
        typer029 = _typer029_python()
        overlay = _typer029_overlay(typer029)
        if typer029 is not None:
            cases["bare_typer_help_typer029"] = ([typer029, str(bare), "--help"], None)
            cases["bare_typer_plain_help_typer029"] = ([typer029, str(plain), "--help"], None)
        if overlay is not None:
            cases["alpaca_md_help_typer029"] = (
                [_venv_bin("alpaca-md"), "--help"],
                {**os.environ, **overlay},
            )
        times: dict[str, list[float]] = {name: [] for name in cases}
        errors: dict[str, str] = {}
        for _ in range(runs):
            for name, (argv, env) in cases.items():
                if name in errors:
                    continue
                try:
                    times[name].append(_time_once(argv, env))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors[name] = str(exc)
    medians = {k: statistics.median(v) for k, v in times.items() if v}
    base = medians.get("bare_typer_help")
    ratios: dict[str, float | None] = {
        f"{k}_vs_bare_typer": round(v / base, 2)
        for k, v in medians.items()
        if base and k != "bare_typer_help"
    }
    try:
        heavy: list[str] | None = heavy_modules_loaded()
    except RuntimeError as exc:
        heavy, errors["heavy_modules"] = None, str(exc)
    heavy029: list[str] | None = None
    if overlay is not None:
        try:
            heavy029 = heavy_modules_loaded(overlay)
        except RuntimeError as exc:
            errors["heavy_modules_typer029"] = str(exc)
    help_ratio = ratios.get("alpaca_md_help_vs_bare_typer")
    plain_base = medians.get("bare_typer_plain_help")
    plain_ratio = (
        round(medians["alpaca_md_help"] / plain_base, 2)
        if plain_base and "alpaca_md_help" in medians
        else None
    )
    ratios["alpaca_md_help_vs_bare_typer_plain"] = plain_ratio
    first_data = time_to_first_data()
    seconds = {k: round(v, 4) for k, v in medians.items()}
    if first_data["seconds"] is not None:
        seconds["run_embedded_time_to_first_data"] = first_data["seconds"]
        seconds["run_embedded_platform_step"] = first_data["platform_step_seconds"]
    if first_data["error"]:
        errors["run_embedded_time_to_first_data"] = first_data["error"]
    return {
        "workload": {
            "runs": runs,
            "statistic": "median wall seconds of a fresh subprocess, cases interleaved",
            "cases": {k: " ".join(v[0]) for k, v in cases.items()},
            "typer029_venv": typer029,
            "typer029_alpaca_md": "alpaca_md_help_typer029 runs our alpaca-md with the Typer "
            "0.29 venv's site-packages first on PYTHONPATH",
            "note": "bare_typer is Typer's defaults (rich help formatting, since rich is "
            "installed); bare_typer_plain sets rich_markup_mode=None and "
            "pretty_exceptions_enable=False as alpaca-md does. Ratios are to bare_typer_help.",
        },
        "seconds": seconds,
        "ratios": ratios,
        "help_loads": heavy,
        "help_loads_on_typer029": heavy029,
        "help_import_offenders": import_offenders(),
        "targets": {
            "help_within_1_2x_bare_typer": None if help_ratio is None else help_ratio <= 1.2,
            "help_within_1_2x_bare_typer_plain": None
            if plain_ratio is None
            else plain_ratio <= 1.2,
            "help_loads_no_heavy_module": None if heavy is None else not heavy,
            "run_embedded_first_data_within_1s": None
            if first_data["seconds"] is None
            else first_data["seconds"] <= 1.0,
        },
        "errors": errors,
    }
