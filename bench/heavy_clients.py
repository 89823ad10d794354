"""Heavy clients beside small ones: does a client sending ~900 KB prompts slow everyone else?

    .venv/bin/python bench/heavy_clients.py                   # rules and semantic, 3 rounds
    .venv/bin/python bench/heavy_clients.py --stacks rules --rounds 1 --json

For each stack, rounds alternate two runs of the small client (the 28-token coding
prompt, or unique 32-token prompts on the semantic stack): alone, then while
`--heavy` connections send one large prompt (prose with code in it, brackets and
newlines included) as fast as they are answered. The small client's p50 loaded over
unloaded is the number the target bounds (<= 2 x). Pinning is `make bench`'s split:
the system under test on CPU 0, wrk and the backend on CPU 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import configs, load
from bench.configs import heavy_body
from bench.load import WrkResult, parse_wrk, run_wrk, wrk_command
from bench.procs import REPO, json_dump
from bench.scenarios import start_stack
from bench.stacks import Lab, Pinning, Stack


def small_script(stack: str) -> str:
    if stack.startswith("semantic"):
        return load.unique_script(32)
    return load.static_script(configs.chat_body(configs.RULES_PROMPT))


def processor_cpu(stack: Stack) -> float:
    return stack.processor.cpu_seconds() if stack.processor else 0.0


def one_round(
    stack: Stack,
    small: Path,
    heavy: Path,
    args: argparse.Namespace,
    nonce: int,
    load_cpus: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("alone", "loaded"):
        background = None
        if mode == "loaded":
            command = wrk_command(
                stack.url, heavy, args.heavy, args.seconds + 2, nonce + 1, load_cpus
            )
            background = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)  # the heavy clients are at full speed before the measured run
        cpu_before = processor_cpu(stack)
        small_run = run_wrk(
            wrk_command(stack.url, small, args.small, args.seconds, nonce, load_cpus),
            args.seconds,
        )
        cpu = processor_cpu(stack) - cpu_before
        record: dict[str, Any] = {"small": small_run.to_json(), "processor_cpu_s": round(cpu, 3)}
        if background is not None:
            stdout, _ = background.communicate(timeout=args.seconds + 40)
            heavy_run: WrkResult = parse_wrk(stdout)
            record["heavy"] = heavy_run.to_json()
        out[mode] = record
        nonce += 2
    alone, loaded = out["alone"]["small"]["p50_ms"], out["loaded"]["small"]["p50_ms"]
    out["p50_ratio"] = round(loaded / alone, 2) if alone else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default="rules,semantic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--small", type=int, default=1, help="small client's connections")
    parser.add_argument("--heavy", type=int, default=4, help="heavy client's connections")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--baseline", type=Path, help="source tree for the -baseline stacks (see bench/run.py)"
    )
    args = parser.parse_args(argv)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = REPO / "bench" / "results" / f"heavy-{stamp}"
    workdir.mkdir(parents=True)
    pinning = Pinning.named("split")
    lab = Lab(workdir, pinning, baseline_src=args.baseline)
    heavy = workdir / "heavy.lua"
    heavy.write_text(load.static_script(heavy_body()))
    settings = {**vars(args), "baseline": str(args.baseline) if args.baseline else None}
    results: dict[str, Any] = {"heavy_body_bytes": len(heavy_body()), "settings": settings}
    try:
        lab.start_backend()
        stacks = {name: start_stack(lab, name) for name in args.stacks.split(",")}
        nonce = 1000
        for name, stack in stacks.items():
            small = workdir / f"{name}-small.lua"
            small.write_text(small_script(name))
            rounds = []
            for _ in range(args.rounds):
                rounds.append(one_round(stack, small, heavy, args, nonce, pinning.load))
                nonce += 10
                print(f"[heavy] {name}: {rounds[-1]['p50_ratio']} x", file=sys.stderr)
            results[name] = {
                "rounds": rounds,
                "p50_alone_ms": statistics.median(r["alone"]["small"]["p50_ms"] for r in rounds),
                "p50_loaded_ms": statistics.median(r["loaded"]["small"]["p50_ms"] for r in rounds),
                "p50_ratio": statistics.median(r["p50_ratio"] for r in rounds),
                "heavy_rps": statistics.median(r["loaded"]["heavy"]["rps"] for r in rounds),
            }
    finally:
        lab.stop()
    json_dump(workdir / "heavy.json", results)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print("| stack | small p50 alone ms | with heavy clients ms | ratio | heavy req/s |")
        print("|---|---|---|---|---|")
        for name in args.stacks.split(","):
            r = results[name]
            print(
                f"| {name} | {r['p50_alone_ms']:.2f} | {r['p50_loaded_ms']:.2f} | "
                f"{r['p50_ratio']:.2f} x | {r['heavy_rps']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
