"""``make soak``: a bounded, seeded fault soak of "nothing left behind" (issue 11).

For ``--seconds`` (default 180), round after round, one ``run`` or one step command (deploy,
connect, publish, auth, subscribe, teardown) meets random faults: a gateway fault injected by
:class:`tests.faultproxy.FaultProxy` (status, hang, reset, truncate; before or after
forwarding), a signal at a random instant (SIGINT, SIGTERM, or two), state-file damage
(deleted, truncated, garbage), and feed drops (the embedded Alpaca server aborts every
connection ``--drop-after`` seconds after it opened). After each round the state file's own
``teardown`` runs without faults, and the platform must hold nothing that neither a state file
nor ``teardown --orphans`` names. At the end ``teardown --orphans --yes`` runs and the
platform must hold nothing at all.

Scope: ``teardown --orphans`` finds workers and connections by their ownership tags, so an
unaccounted or leftover object of either kind fails the soak.

Not part of ``make test``: it is random by design. It prints its seed first; ``make soak
SOAK_SEED=N`` replays the same choices (timing still varies).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from tests.faultproxy import KINDS, Fault, FaultProxy
from tests.support import child_env, embedded_platform

WORKER_URL = "embedded://websocketmanagercontroller"
METHODS = [
    "workmanager.CreateWorker",
    "workmanager.StartWorker",
    "workmanager.StopWorker",
    "workmanager.DeleteWorker",
    "workmanager.ListWorkers",
    "websocketmanager.List",
    "websocketmanager.Disconnect",
    "/v1/grpc/workmanager/schema/CreateWorker",
]
STEPS = ["deploy", "connect", "publish", "auth", "subscribe", "teardown"]
COMMAND_LIMIT = 60.0
"""A command still running this long after its signal counts as hung (then SIGKILLed)."""


@dataclass
class Tally:
    rounds: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    signals: dict[str, int] = field(default_factory=dict)
    damage: dict[str, int] = field(default_factory=dict)
    exits: dict[int, int] = field(default_factory=dict)
    hung: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    unaccounted_workers: list[str] = field(default_factory=list)
    unaccounted_connections: list[str] = field(default_factory=list)

    def count(self, table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1


class Soak:
    def __init__(self, platform: Any, proxy: FaultProxy, root: Path, rng: random.Random) -> None:
        self.platform = platform
        self.proxy = proxy
        self.root = root
        self.rng = rng
        self.tally = Tally()
        base = child_env(unbuffered=False)
        self.env = {**base, **platform.env(), "VIRTUFIN_API_URL": proxy.url}
        self.direct = {**base, **platform.env()}
        self.states: list[Path] = []

    # -- one command ------------------------------------------------------------------------------

    def cli(
        self, args: list[str], state: Path, *, direct: bool = False, signals: int = 0
    ) -> tuple[int, str, str]:
        env = dict(self.direct if direct else self.env)
        env["ALPACA_MD_STATE"] = str(state)
        proc = subprocess.Popen(
            [sys.executable, "-m", "alpaca_cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.root,
        )
        if signals:
            # A random instant: anywhere from start-up to well into the stream.
            time.sleep(self.rng.uniform(0.0, 4.0))
            signum = self.rng.choice([signal.SIGINT, signal.SIGTERM])
            for _ in range(signals):
                if proc.poll() is None:
                    proc.send_signal(signum)
                    time.sleep(self.rng.uniform(0.0, 0.5))
        try:
            out, err = proc.communicate(timeout=COMMAND_LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.tally.hung.append(" ".join(args))
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    # -- one round --------------------------------------------------------------------------------

    def round(self, n: int) -> None:
        rng, tally = self.rng, self.tally
        state = self.root / f"round-{n}" / "state.json"
        state.parent.mkdir()
        self.states.append(state)
        self.proxy.clear()
        if rng.random() < 0.7:
            method, kind = rng.choice(METHODS), rng.choice(KINDS)
            when = rng.choice(["before", "after"])
            status = rng.choice([400, 500, 503])
            self.proxy.add(method, Fault(kind, when=when, status=status, times=rng.choice([1, 2])))
            tally.count(tally.faults, f"{kind}/{when} {method}")
        signals = rng.choice([0, 0, 1, 1, 2])
        tally.count(tally.signals, {0: "none", 1: "one", 2: "two"}[signals])
        if rng.random() < 0.5:
            args = ["run", "--url", WORKER_URL, "--stall-limit", "0"]
            args += ["--duration", f"{rng.uniform(0.5, 3.0):.1f}"]
            commands = [args]
        else:
            prefix = rng.randint(1, len(STEPS) - 1)
            commands = [
                ["deploy", "--url", WORKER_URL] if s == "deploy" else [s] for s in STEPS[:prefix]
            ]
            if "subscribe" in STEPS[:prefix]:
                commands[-1] = ["subscribe", "--channel", "trades", "BTC/USD"]
        victim = rng.randrange(len(commands)) if signals else -1
        for i, args in enumerate(commands):
            code, _, err = self.cli(args, state, signals=signals if i == victim else 0)
            tally.count(tally.exits, code)
            if "Traceback" in err:
                tally.tracebacks.append(f"round {n} {' '.join(args)}: {err.strip()[-300:]}")
            if rng.random() < 0.15:
                self.damage(state)
        self.proxy.clear()
        # The way out an operator takes: the state file's own teardown, without faults.
        self.cli(["teardown"], state, direct=True)
        self.check(f"round {n}")
        tally.rounds += 1

    def damage(self, state: Path) -> None:
        kind = self.rng.choice(["delete", "truncate", "garbage"])
        if not state.exists():
            return
        self.tally.count(self.tally.damage, kind)
        if kind == "delete":
            state.unlink()
        elif kind == "truncate":
            text = state.read_bytes()
            state.write_bytes(text[: len(text) // 2])
        else:
            state.write_bytes(b"\x00garbage{")

    # -- the invariant ----------------------------------------------------------------------------

    def named(self) -> set[str]:
        ids: set[str] = set()
        for path in self.states:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for key in ("worker", "connection"):
                record = doc.get(key) if isinstance(doc, dict) else None
                if isinstance(record, dict) and record.get("id"):
                    ids.add(str(record["id"]))
        return ids

    def orphans(self) -> set[str]:
        empty = self.root / "orphans" / "state.json"
        empty.parent.mkdir(exist_ok=True)
        code, out, err = self.cli(["teardown", "--orphans", "--json"], empty, direct=True)
        try:
            doc = json.loads(out)
            return {str(o["id"]) for o in [*doc["orphans"], *doc["orphan_connections"]]}
        except (ValueError, KeyError, TypeError):
            print(f"  teardown --orphans failed (exit {code}): {err.strip()[-200:]}")
            return set()

    def check(self, when: str) -> None:
        workers = {w.id for w in self.platform.workmanager.list_workers()}
        connections = {c.id for c in self.platform.wsm.list()}
        findable = self.named() | self.orphans()
        lost_w, lost_c = sorted(workers - findable), sorted(connections - findable)
        if lost_w or lost_c:
            print(f"  {when}: unaccounted workers {lost_w}, connections {lost_c}")
        self.tally.unaccounted_workers += [
            w for w in lost_w if w not in self.tally.unaccounted_workers
        ]
        self.tally.unaccounted_connections += [
            c for c in lost_c if c not in self.tally.unaccounted_connections
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"soak seed {seed} ({args.seconds:g} s); replay with make soak SOAK_SEED={seed}")
    rng = random.Random(seed)
    drop_after = rng.choice([1.5, 2.5, 4.0])
    print(f"feed drops: every connection aborted {drop_after:g} s after it opened")
    with (
        TemporaryDirectory(prefix="alpaca-md-soak-") as tmp,
        embedded_platform(feed_options={"drop_after": drop_after}, reconnect_base_delay=0.2) as p,
        FaultProxy(p.gateway_url) as proxy,
    ):
        soak = Soak(p, proxy, Path(tmp), rng)
        end = time.monotonic() + args.seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            soak.round(n)
            print(f"round {n}: ok so far ({len(proxy.injected)} faults injected)", flush=True)
        tally = soak.tally
        everything = soak.root / "final" / "state.json"
        everything.parent.mkdir()
        for state in soak.states:
            soak.cli(["teardown"], state, direct=True)
        soak.cli(["teardown", "--orphans", "--yes"], everything, direct=True)
        left_w = sorted(w.id for w in p.workmanager.list_workers())
        left_c = sorted(c.id for c in p.wsm.list())
        print(f"rounds: {tally.rounds}; faults injected: {len(proxy.injected)}")
        print(f"  fault kinds: {json.dumps(tally.faults, sort_keys=True)}")
        print(f"  signals: {tally.signals}; state damage: {tally.damage}")
        print(f"  exit codes: {dict(sorted(tally.exits.items()))}")
        print(f"  hung commands (killed after {COMMAND_LIMIT:g} s): {tally.hung or 'none'}")
        print(f"  tracebacks: {len(tally.tracebacks)}")
        for line in tally.tracebacks[:5]:
            print(f"    {line}")
        print(
            f"  unaccounted after a round: workers {tally.unaccounted_workers or 'none'}; "
            f"connections {tally.unaccounted_connections or 'none'}"
        )
        print(
            f"left after teardown --orphans --yes: workers {left_w or 'none'}; "
            f"connections {left_c or 'none'}"
        )
        failed = bool(
            tally.unaccounted_workers
            or tally.unaccounted_connections
            or left_w
            or left_c
            or tally.hung
            or tally.tracebacks
        )
        print("soak: FAILED" if failed else "soak: nothing left behind")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
