"""The readable table ``make bench`` prints: one section per benchmark, targets marked."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _verdict(value: bool | None) -> str:
    return "n/a " if value is None else ("PASS" if value else "MISS")


def _table(title: str, rows: list[tuple[str, Any]], targets: dict[str, Any] | None) -> str:
    width = max([len(k) for k, _ in rows] + [len(k) for k in targets or {}] + [10])
    out = [f"\n== {title} " + "=" * max(3, 70 - len(title))]
    out += [f"  {k:<{width}}  {_fmt(v)}" for k, v in rows]
    for name, ok in (targets or {}).items():
        out.append(f"  [{_verdict(ok)}] {name}")
    return "\n".join(out) + "\n"


def _errors(section: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(f"error: {k}", v) for k, v in (section.get("errors") or {}).items()]


def render(results: dict[str, Any]) -> str:
    """Text for stdout from a results dict as written to results.json."""
    parts: list[str] = []
    meta = results.get("meta", {})
    parts.append(
        f"alpaca-md bench  {meta.get('date')}  commit {meta.get('commit')}  "
        f"python {meta.get('python')}  cpus {meta.get('cpus')}"
        + ("  (QUICK: smoke sizes, not benchmark numbers)" if meta.get("quick") else "")
        + "\n"
    )
    if (d := results.get("decode")) is not None:
        w = d.get("workload", {})
        rows: list[tuple[str, Any]] = [
            (
                "workload",
                f"{w.get('messages')} msgs / {w.get('frames')} frames / "
                f"{w.get('symbols')} symbols, {w.get('rounds')} rounds",
            )
        ]
        rows += [(f"msgs/s {k}", v) for k, v in d.get("messages_per_second", {}).items()]
        rows += [(f"ratio {k}", v) for k, v in d.get("ratios", {}).items()]
        parts.append(_table("decode + book", rows + _errors(d), d.get("targets")))
    if (s := results.get("startup")) is not None:
        rows = [(f"seconds {k}", v) for k, v in s.get("seconds", {}).items()]
        rows += [(f"ratio {k}", v) for k, v in s.get("ratios", {}).items()]
        rows.append(("--help loads", ", ".join(s.get("help_loads") or []) or "none of them"))
        offenders = (s.get("help_import_offenders") or {}).get("by_cumulative", [])[:4]
        rows += [(f"import {o['module']}", f"{o['cumulative_ms']:.1f} ms") for o in offenders]
        parts.append(_table("start-up", rows + _errors(s), s.get("targets")))
    if (e := results.get("e2e")) is not None:
        rows = []
        for rate, step in (e.get("steps") or {}).items():
            lat = step.get("latency_ms", {})
            if step.get("setup_failed"):
                rows.append((f"rate {rate}/s", "pipeline set-up failed under load: NOT sustained"))
                continue
            rows.append(
                (
                    f"rate {rate}/s",
                    f"recv {_fmt(step.get('received_rate'))}/s  lost {step.get('lost')}  "
                    f"p50 {_fmt(lat.get('p50'))} ms  p99 {_fmt(lat.get('p99'))} ms  "
                    f"tail rss {_fmt(step.get('tail_peak_rss_mb'))} MB  "
                    f"{'sustained' if step.get('sustained') else 'NOT sustained'}",
                )
            )
        ceil = e.get("ceiling") or {}
        work = e.get("workload") or {}
        ratios = e.get("ratios") or {}
        rows += [
            ("bus", work.get("bus")),
            ("ladder stopped", work.get("stopped_because")),
            ("max sustained rate", e.get("max_sustained_rate")),
            ("plain websocket ceiling", ceil.get("rate")),
            ("ceiling frame size", ceil.get("frame_messages")),
            ("ceiling server offers", ceil.get("offer_rate")),
            ("sustained / ceiling", ratios.get("max_sustained_vs_ceiling")),
            ("offer / max sustained", ratios.get("ceiling_offer_vs_max_sustained")),
            ("p50 ms at 1k/s", (e.get("latency_ms_at_1k") or {}).get("p50")),
            ("p99 ms at 1k/s", (e.get("latency_ms_at_1k") or {}).get("p99")),
            ("p50 ms at 10k/s", (e.get("latency_ms_at_10k") or {}).get("p50")),
            ("p99 ms at 10k/s", (e.get("latency_ms_at_10k") or {}).get("p99")),
        ]
        parts.append(_table("end to end", rows + _errors(e), e.get("targets")))
    if (m := results.get("memory")) is not None:
        rows = [
            (f"tail MB at {r}/s", v) for r, v in (m.get("tail_peak_rss_mb_by_rate") or {}).items()
        ]
        run = m.get("run") or {}
        rows.append(
            ("tail MB at highest sustained", m.get("tail_peak_rss_mb_at_highest_sustained"))
        )
        rows.append(("run --embedded MB", run.get("peak_rss_mb")))
        rows.append(("run rate applied", run.get("rate_applied")))
        parts.append(_table("memory (peak RSS)", rows + _errors(m), m.get("targets")))
    if (s := results.get("soak")) is not None:
        keys: tuple[str, ...] = (
            "seconds",
            "record_ttl",
            "exit_code",
            "connection_listed_at_end",
            "trades_seen",
        )
        keys += ("trade_ids_lost", "sockets_seen", "reconnects", "connections_opened")
        rows = [(key, s.get(key)) for key in keys]
        parts.append(_table("soak (long run)", rows + _errors(s), s.get("targets")))
    parts.append(f"\ntotal {_fmt(meta.get('total_seconds'))} s\n")
    return "".join(parts)
