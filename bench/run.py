"""switchyard's end-to-end benchmark (`make bench`): every scenario side by side, one run.

    .venv/bin/python bench/run.py                 # full: 3 runs x 3 s, ~6-8 minutes
    .venv/bin/python bench/run.py --quick         # 1 run x 2 s, fewer scenarios, no doc
    .venv/bin/python bench/run.py --from-json bench/results/FILE.json   # doc only

Every stack (ceiling, trivial processor, switchyard rules-only, ...) is started
once and kept running; the runs then go round-robin (run 1 of every scenario
and concurrency, then run 2 ...), so a change in the machine's load during the
benchmark touches all scenarios alike. Raw results go to bench/results/ (JSON,
with the work directory of configs, wrk scripts and logs beside it);
docs/BENCHMARKS.md is rewritten from them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import configs, machine, report
from bench.load import run_wrk, wrk_command
from bench.measure import measure
from bench.procs import REPO, json_dump
from bench.scenarios import BY_NAME, QUICK, SCENARIOS, Scenario, start_stack, write_script
from bench.stacks import Lab, Pinning, Stack

DOC = REPO / "docs" / "BENCHMARKS.md"
RESULTS = REPO / "bench" / "results"
WARMUP_S = 1


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 run of 2 s, scenarios: " + ",".join(QUICK)
    )
    parser.add_argument("--runs", type=int, help="runs per scenario and concurrency (default 3)")
    parser.add_argument("--seconds", type=int, help="length of one run (default 3)")
    parser.add_argument("--concurrency", default="1,16,64", help="wrk connections, comma-separated")
    parser.add_argument("--scenarios", help="comma-separated: " + ",".join(BY_NAME))
    parser.add_argument(
        "--pin",
        default="split",
        choices=["split", "load", "both", "none"],
        help="CPU pinning (see docs/BENCHMARKS.md)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--doc",
        type=Path,
        help=f"where to write the report (default {DOC.relative_to(REPO)}; --quick writes none)",
    )
    parser.add_argument("--no-handler", action="store_true", help="skip bench/handler_bench.py")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="source tree of another revision (git archive REV | tar -x -C DIR): adds the "
        "-baseline scenarios, that revision's switchyard in the same run",
    )
    parser.add_argument(
        "--from-json", type=Path, help="rewrite the doc from saved results; run nothing"
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (2 if args.quick else 3)
    every = [name for name in BY_NAME if args.baseline or "-baseline" not in name]
    names = args.scenarios.split(",") if args.scenarios else (QUICK if args.quick else every)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; expected some of {list(BY_NAME)}")
    if "ceiling" not in names:
        names.insert(0, "ceiling")  # every ratio is to the ceiling
    args.selected = [s for s in SCENARIOS if s.name in names]
    args.concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.doc is None and not args.quick:
        args.doc = DOC
    return args


def start_stacks(lab: Lab, selected: list[Scenario]) -> tuple[dict[str, Stack], dict[str, str]]:
    stacks: dict[str, Stack] = {}
    failed: dict[str, str] = {}
    for name in dict.fromkeys(s.stack for s in selected):
        _log(f"starting stack {name}")
        try:
            stacks[name] = start_stack(lab, name)
        except Exception as exc:  # reported, and the other stacks still run
            failed[name] = f"{type(exc).__name__}: {exc}"[:2000]
            _log(f"stack {name} did not start: {failed[name]}")
    return stacks, failed


def run_handler_bench(quick: bool, semantic: bool) -> dict[str, Any]:
    command = [sys.executable, str(REPO / "bench" / "handler_bench.py"), "--json"]
    command += ["--quick"] if quick else []
    command += [] if semantic else ["--cases", "rules,rules-heavy"]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    if done.returncode != 0:
        return {"command": command, "error": done.stderr[-2000:]}
    return {"command": command, "cases": json.loads(done.stdout)}


def run_inference_settings(quick: bool) -> dict[str, Any]:
    command = [sys.executable, str(REPO / "bench" / "inference_settings.py"), "--json"]
    command += ["--runs", "50" if quick else "200"]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    if done.returncode != 0:
        return {"command": command, "error": done.stderr[-2000:]}
    return {"command": command, **json.loads(done.stdout)}


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pinning = Pinning.named(args.pin)
    lab = Lab(workdir, pinning, baseline_src=args.baseline)
    runs: list[dict[str, Any]] = []
    try:
        lab.start_backend()
        stacks, failed = start_stacks(lab, args.selected)
        scenarios = [s for s in args.selected if s.stack in stacks]
        scripts = {s.name: write_script(s, workdir) for s in scenarios}
        nonce = 0
        for scenario in scenarios:  # connections, JIT, the classifier's cache for repeats
            stack = stacks[scenario.stack]
            nonce += 1
            command = wrk_command(
                stack.url,
                scripts[scenario.name],
                max(args.concurrencies),
                WARMUP_S,
                nonce,
                pinning.load,
            )
            run_wrk(command, WARMUP_S)
        for run in range(args.runs):
            for scenario in scenarios:
                for connections in args.concurrencies:
                    nonce += 1
                    record = measure(
                        stacks[scenario.stack], scenario, lab.procs, scripts[scenario.name],
                        connections, args.seconds, nonce, pinning.load,
                    )  # fmt: skip
                    record["run"] = run
                    runs.append(record)
                    wrk = record["wrk"]
                    _log(
                        f"run {run + 1}/{args.runs} {scenario.name:20} c={connections:<3} "
                        f"{wrk['rps']:8.1f} req/s  p50 {wrk['p50_ms']:7.2f} ms  "
                        f"p99 {wrk['p99_ms']:7.2f} ms"
                    )
        commands = {proc.name: proc.command for proc in lab.procs}
    finally:
        lab.stop()
    return {
        "pinning": pinning.__dict__,
        "commands": commands,
        "skipped": {s.name: failed[s.stack] for s in args.selected if s.stack in failed},
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        doc = args.doc or DOC
        doc.write_text(report.render(saved, _kept(doc)))
        _log(f"wrote {doc}")
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    workdir = args.results_dir / f"work-{stamp}"
    workdir.mkdir()
    started = time.time()
    results: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "argv": ["bench/run.py", *(argv if argv is not None else sys.argv[1:])],
        "settings": {
            "quick": args.quick,
            "runs": args.runs,
            "seconds": args.seconds,
            "concurrencies": args.concurrencies,
            "scenarios": [s.name for s in args.selected],
        },
        "machine": machine.describe(),
        "labels": configs.product_labels()[2],
        "scenarios": {
            s.name: {"title": s.title, "stack": s.stack, "tokens": s.tokens} for s in args.selected
        },
    }
    results.update(benchmark(args, workdir))
    if not args.no_handler:
        _log("handler micro-benchmark")
        semantic = any(s.semantic for s in args.selected) and "semantic" not in {
            BY_NAME[name].stack for name in results["skipped"]
        }
        results["handler"] = run_handler_bench(args.quick, semantic)
        if semantic:
            _log("inference settings")
            results["inference_settings"] = run_inference_settings(args.quick)
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["elapsed_s"] = round(time.time() - started, 1)
    path = args.results_dir / f"bench-{stamp}.json"
    json_dump(path, results)
    _log(f"wrote {path} ({results['elapsed_s']} s)")
    print(report.summary_text(results))
    if args.doc:
        args.doc.write_text(report.render(results, _kept(args.doc)))
        _log(f"wrote {args.doc}")
    return 1 if results["skipped"] else 0


def _kept(doc: Path) -> list[str]:
    """The hand-kept sections of the doc about to be rewritten."""
    return report.kept_by_hand(doc.read_text()) if doc.exists() else []


if __name__ == "__main__":
    raise SystemExit(main())
