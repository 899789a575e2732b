"""The benchmark suite runs end to end on tiny workloads and reports well-formed results.

No timing is asserted anywhere: speed is what ``make bench`` reports, not what tests check.
What is checked is that each benchmark measures what it says (every contender handled every
message, loss is counted from trade-id gaps) and that its result has the shape results.json
promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgpack
import orjson
import pytest

# The benchmark's own dependencies (alpaca-py, the reference decoder) come with the ``bench``
# extra; without it this module is skipped, not failed.
pytest.importorskip("alpaca.data.live.crypto", reason="needs the bench extra (alpaca-py)")

from bench import decode, e2e, frames, memory, report, startup
from bench.platform import BUSES, CliError, bus_named

pytestmark = [
    pytest.mark.timeout(120),
    # alpaca-py (a benchmark-only dependency) imports websockets' deprecated legacy module.
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]


def test_generated_stream_is_realistic_and_the_same_in_both_encodings() -> None:
    w = frames.generate(600, seed=3)
    assert w.messages == 600
    assert w.symbols >= 20
    json_msgs = [m for f in w.json_frames for m in orjson.loads(f)]
    packed = [m for f in w.msgpack_frames for m in msgpack.unpackb(f, timestamp=3)]
    assert len(json_msgs) == len(packed) == 600
    assert {m["T"] for m in json_msgs} >= {"t", "q", "o", "b"}
    assert any(m.get("r") for m in json_msgs if m["T"] == "o")
    assert max(len(orjson.loads(f)) for f in w.json_frames) > 1
    for j, p in zip(json_msgs, packed, strict=True):
        assert j["T"] == p["T"] and j["S"] == p["S"]
    assert sum(w.counts.values()) == 600
    assert frames.rfc3339(1_679_056_080_000_000_000) == "2023-03-17T12:28:00Z"
    assert frames.rfc3339(1_710_238_068_858_228_144) == "2024-03-12T10:07:48.858228144Z"


def test_decode_benchmark_runs_every_contender_on_every_message() -> None:
    result = decode.run(messages=300, rounds=1)
    assert result["errors"] == {}
    assert set(result["messages_per_second"]) == set(decode.contenders())
    assert all(v > 0 for v in result["messages_per_second"].values())
    assert set(result["targets"]) == {
        "at_least_10x_alpaca_py",
        "decode_only_at_most_1x_orjson_loads",
        "at_most_1_5x_orjson_loads",
        "msgpack_decode_only_at_most_1x_unpackb",
        "msgpack_at_most_1_5x_unpackb",
    }
    assert all(isinstance(v, bool) for v in result["targets"].values())
    assert {"cost_vs_orjson_loads", "decode_only_cost_vs_orjson_loads"} <= set(result["ratios"])
    assert {
        "msgpack_cost_vs_msgpack_unpackb",
        "msgpack_decode_only_cost_vs_msgpack_unpackb",
    } <= set(result["ratios"])
    assert all(v is not None and v > 0 for v in result["ratios"].values())
    json.dumps(result)


def test_startup_benchmark_times_each_case_and_lists_heavy_imports() -> None:
    result = startup.run(runs=1)
    assert {"python_c_pass", "bare_typer_help", "alpaca_md_help"} <= set(result["seconds"])
    assert isinstance(result["help_loads"], list)
    assert set(result["help_loads"]) <= set(startup.HEAVY_MODULES)
    assert result["help_import_offenders"]["by_cumulative"]
    json.dumps(result)


def test_heavy_module_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The probe is not blind: a process that imports pydantic is reported as loading it."""
    code = "import json, sys, pydantic\n" + startup._HELP_PROBE.split("from alpaca_cli", 1)[0]
    code += "heavy = ('pydantic',)\n"
    code += "tops = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\nprint(tops)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pydantic" in out.stdout


def _capture(ids: list[int], *, t_ns: int = 1_000) -> e2e.TailCapture:
    lines = []
    for k, i in enumerate(ids):
        msg = {"T": "t", "S": "BTC/USD", "p": 1.0, "s": 1.0, "t": t_ns, "i": i}
        lines.append((t_ns + 1_000_000 + k, orjson.dumps({"message": msg}) + b"\n"))
    lines.append((t_ns + 2_000_000, b'{"T":"subscription","trades":["*"]}\n'))
    return e2e.TailCapture(lines, (0, t_ns + 10**9), peak_rss_kb=2048)


def test_analysis_counts_a_missing_trade_id_as_lost() -> None:
    clean = e2e.analyze(_capture([5, 6, 7, 8]), offered_rate=1)
    assert clean["lost"] == 0 and clean["trades_sent_in_span"] == 4
    gap = e2e.analyze(_capture([5, 6, 8, 9]), offered_rate=1)
    assert gap["lost"] == 1 and not gap["sustained"]
    assert gap["control_messages"] == 1
    assert gap["latency_ms"]["p50"] == pytest.approx(1.0, abs=0.01)
    assert gap["tail_peak_rss_mb"] == 2.0


def test_analysis_requires_the_offered_rate_to_arrive() -> None:
    slow = e2e.analyze(_capture([1, 2, 3]), offered_rate=1_000)
    assert slow["lost"] == 0 and not slow["sustained"]


def test_end_to_end_step_memory_and_report_on_the_embedded_platform(tmp_path: Path) -> None:
    try:
        result = e2e.run(
            first_rate=0,
            seconds=1.0,
            warmup=0.3,
            latency_rate=500,
            ceiling_seconds=0.5,
            channels=("trades",),
        )
    except CliError as exc:  # pragma: no cover - the pipeline's own tests say why
        pytest.fail(f"pipeline failed: {exc}")
    assert result["errors"] == {}, result["errors"]
    step = result["steps"]["500"]
    assert step["received_data_messages"] > 0
    assert step["trades_seen"] > 0
    assert step["tail_peak_rss_mb"] > 0
    assert result["ceiling"]["rate"] > 0
    assert result["ceiling"]["offer_rate"] > 0
    assert result["ceiling"]["frame_messages"] == e2e.frame_messages_at(500)
    assert result["workload"]["bus"] == "dapr"
    assert result["workload"]["source"] == "wsfeed"
    assert result["workload"]["pipeline"].startswith("bench.wsfeed")
    assert set(result["targets"]) == {
        "zero_loss_at_10k",
        "sustained_at_least_50pct_of_ceiling",
        "ceiling_server_offers_3x_max_sustained",
        "p99_under_10ms_at_1k",
        "p99_under_20ms_at_10k",
    }
    assert {"max_sustained_vs_ceiling", "ceiling_offer_vs_max_sustained"} <= set(result["ratios"])
    mem = memory.run(result, seconds=2.0)
    assert mem["tail_peak_rss_mb_by_rate"]["500"] == step["tail_peak_rss_mb"]
    assert mem["run"]["peak_rss_mb"] > 0
    assert "tail_under_100mb_at_highest_sustained" in mem["targets"]
    text = report.render({"meta": {"quick": True}, "e2e": result, "memory": mem})
    assert "end to end" in text and "memory" in text


def test_a_step_can_read_dev_ups_own_feed() -> None:
    step = e2e.run_step(500, seconds=1.0, warmup=0.3, channels=("trades",), source="dev-feed")
    assert step["trades_seen"] > 0 and step["lost"] == 0
    with pytest.raises(ValueError, match="unknown source"):
        e2e.run_step(500, source="carrier-pigeon")


def test_the_paced_source_numbers_trades_and_stamps_each_frame_when_sent() -> None:
    from alpaca_cli.alpaca.codec import decode
    from alpaca_cli.devstack.feed import TRADE_ID_BASE
    from bench.wsfeed import Templates

    templates = Templates(messages=600)
    second = 1_764_000_000 * 10**9
    now = second + 150  # the frame's first messages fall in the second before
    first, last_id = templates.frame(400, now, TRADE_ID_BASE)
    then, next_id = templates.frame(400, now + 10**6, last_id)
    msgs = decode(first) + decode(then)
    assert len(msgs) == 800
    ids = [m.id for m in msgs if m.T == "t"]
    assert ids == list(range(TRADE_ID_BASE + 1, next_id + 1)) and len(ids) > 50
    timed = [m.timestamp for m in decode(first) if m.T in ("t", "q", "o")]
    assert timed == sorted(set(timed)) and timed[-1] <= now
    assert timed[0] < second <= timed[-1]  # a frame across a second boundary stays exact
    assert [m.T for m in msgs[600:]] == [m.T for m in msgs[:200]]  # round and round


def test_tail_output_read_in_chunks_is_cut_into_stamped_lines() -> None:
    chunks = [(1, b'{"a":1}\n{"b"'), (2, b":2}\n"), (3, b'{"c":3}')]
    assert e2e._lines_of(chunks) == [(1, b'{"a":1}'), (2, b'{"b":2}'), (3, b'{"c":3}')]
    assert e2e._lines_of([]) == []


def test_the_ladder_climbs_by_its_factor_up_to_its_cap() -> None:
    assert e2e.ladder_rates(10_000, 2.0, 100_000) == [10_000, 20_000, 40_000, 80_000]
    assert e2e.ladder_rates(0, 2.0, 100_000) == []


def test_ceiling_frames_hold_what_the_feed_packs_at_a_rate() -> None:
    assert e2e.frame_messages_at(1_000) == 10
    assert e2e.frame_messages_at(40_000) == 400
    assert e2e.frame_messages_at(10**6) == e2e.MAX_FRAME_MESSAGES
    assert e2e.frame_messages_at(None) == 1


def test_the_ceiling_server_is_read_faster_than_it_is_parsed() -> None:
    """The bench-only server offers more than a parsing client takes: the client is the limit."""
    result = e2e.ceiling(seconds=0.5, frame_messages=100, windows=2)
    assert result["rate"] > 0
    assert result["offer_rate"] >= result["rate"]
    assert len(result["read_windows"]) == 2 and result["rate"] == max(result["read_windows"])


def test_buses_are_chosen_by_name_and_dapr_is_the_default() -> None:
    assert e2e.DEFAULT_BUS in BUSES
    assert bus_named("dapr").name == "dapr"
    with pytest.raises(ValueError, match="unknown bus"):
        bus_named("carrier-pigeon")


def test_a_rung_that_cannot_be_set_up_says_so() -> None:
    assert "set up" in e2e._why_not(
        {"offered_rate": 40_000, "sustained": False, "setup_failed": True}
    )
    lost = {"offered_rate": 10, "received_rate": 10, "lost": 2, "trades_seen": 5,
            "latency_ms": {"p99": 3.0}}  # fmt: skip
    assert e2e._why_not(lost) == "2 trades lost"


def test_lost_trade_ids_are_counted_per_socket() -> None:
    from alpaca_cli.devstack.feed.market import TRADE_ID_BASE as B
    from bench.soak import lost_trade_ids

    assert lost_trade_ids([]) == (0, 0)
    assert lost_trade_ids([B + 1, B + 2, B + 3]) == (0, 1)
    assert lost_trade_ids([B + 5, B + 7, B + 8]) == (1, 1)  # counted from the first id seen
    assert lost_trade_ids([B + 1, B + 2, B + 1, B + 3]) == (1, 2)  # a new socket starts over


@pytest.mark.parametrize(
    ("keepalive", "listed"),
    [pytest.param("1", True, id="keepalive"), pytest.param("0", False, id="no-keepalive")],
)
def test_the_soak_sees_the_record_ttl(keepalive: str, listed: bool) -> None:
    """The soak in seconds: a 3 s record TTL, a run of 8 s. With the keepalive the connection
    is listed at the end; without it the soak reports the miss (so its verdict means it)."""
    from bench import soak

    result = soak.run(seconds=8, record_ttl=3, run_args=["--keepalive", keepalive])
    assert result["connection_listed_at_end"] is listed, result
    assert result["targets"]["connection_listed_at_end"] is listed
    if listed:
        assert "errors" not in result, result
        assert result["trade_ids_lost"] == 0 and result["trades_seen"] > 0
    else:
        assert result["errors"]["connection_listed_at_end"] == "missed"
    assert "soak (long run)" in report.render({"meta": {}, "soak": result})
