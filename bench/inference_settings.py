"""What onnxruntime's thread settings cost the classifier: 1 or 2 intra-op threads,
spinning on or off, on one CPU (as `--pin split` gives switchyard) or on every CPU.

switchyard's own setting (`server.classify_threads`, and spinning as
classifier/onnx_io.py sets it) is reported beside the table. The model is run here directly, on one
~32-token prompt, each setting in its own process (pinned with taskset for the
one-CPU rows), so the numbers isolate the settings from gRPC and Envoy.

    .venv/bin/python bench/inference_settings.py [--json] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.configs import MODEL_DIR
from bench.load import WORDS

SETTINGS = [(2, True), (2, False), (1, True), (1, False)]
"""(intra-op threads, spinning)."""
PROMPT_WORDS = 30  # + [CLS] and [SEP]: 32 tokens


def measure(threads: int, spinning: bool, runs: int) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    from classifier.tokenize import TextTokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(
        str(MODEL_DIR / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
    )
    ids, mask = TextTokenizer(MODEL_DIR, 128).batch([" ".join(WORDS[:PROMPT_WORDS])])
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feed["token_type_ids"] = np.zeros_like(ids)
    for _ in range(20):
        session.run(None, feed)
    samples = []
    cpu = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "cpu_ms": round((time.process_time() - cpu) * 1000 / runs, 3),
    }


def run_all(runs: int) -> list[dict[str, Any]]:
    rows = []
    for cpus in ("0", None):
        for threads, spinning in SETTINGS:
            command = [sys.executable, __file__, "--one", f"{threads},{int(spinning)}"]
            command += ["--runs", str(runs)]
            if cpus:
                command = ["taskset", "-c", cpus, *command]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
            result = json.loads(done.stdout)
            rows.append(
                {"cpus": "1 CPU" if cpus else "all CPUs", "threads": threads, "spinning": spinning}
                | result
            )
    return rows


def product_setting() -> dict[str, Any]:
    """The threads and spinning switchyard runs with by default."""
    from classifier import onnx_io
    from extproc.config import ServerConfig

    source = Path(onnx_io.__file__).read_text()
    spinning_off = '"session.intra_op.allow_spinning", "0"' in source
    return {"threads": ServerConfig().classify_threads, "spinning": not spinning_off}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # threads,spinning: one setting
    args = parser.parse_args(argv)
    if args.one:
        threads, spinning = (int(x) for x in args.one.split(","))
        print(json.dumps(measure(threads, bool(spinning), args.runs)))
        return 0
    rows = run_all(args.runs)
    if args.json:
        print(json.dumps({"product": product_setting(), "rows": rows}, indent=1))
        return 0
    for row in rows:
        print(
            f"{row['cpus']:9} threads={row['threads']} spinning={row['spinning']!s:5} "
            f"p50 {row['p50_ms']:6.2f} ms  CPU {row['cpu_ms']:6.2f} ms per inference"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
