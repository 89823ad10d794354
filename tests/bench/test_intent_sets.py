"""The few-shot configs that bench/banking77.py and bench/hwu64.py cut from a public intent
set: examples never reappear as queries, and out-of-scope intents get no label."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import banking77
from bench.banking77 import FALLBACK
from bench.hwu64 import OOS_INTENTS, configs

REPO = Path(__file__).resolve().parents[2]

# 12 intents of 19 prompts, 2 of 12 (configured at k = 5 only), 2 of 4 (never configured).
INTENTS = {
    **{f"big{i}": [f"big{i} prompt {j}" for j in range(19)] for i in range(12)},
    **{f"mid{i}": [f"mid{i} prompt {j}" for j in range(12)] for i in range(2)},
    **{f"tiny{i}": [f"tiny{i} prompt {j}" for j in range(4)] for i in range(2)},
}


def test_hwu64_configs_keep_examples_out_of_the_queries() -> None:
    made = configs(INTENTS, [0, 1])
    assert [name for name, _, _ in made] == [
        "hwu14 k=5 s=0",
        "hwu14-oos6 k=5 s=0",
        "hwu14 k=5 s=1",
        "hwu14-oos6 k=5 s=1",
        "hwu12 k=10 s=0",
        "hwu12-oos6 k=10 s=0",
        "hwu12 k=10 s=1",
        "hwu12-oos6 k=10 s=1",
    ]
    for name, labels, queries in made:
        k = int(name.split("k=")[1].split()[0])
        examples = {text for label in labels for text in label.examples}
        assert all(len(label.examples) == k for label in labels)
        assert not examples & {text for text, _ in queries}
        configured = {label.name for label in labels}
        assert not any(name.startswith("tiny") for name in configured)
        out_of_scope = [text for text, expected in queries if expected == FALLBACK]
        if "-oos" in name:
            assert len(configured) == (14 if k == 5 else 12) - OOS_INTENTS
            assert out_of_scope and all(text.split()[0] not in configured for text in out_of_scope)
        else:
            assert not out_of_scope
        for text, expected in queries:
            assert expected == FALLBACK or text.startswith(expected + " ")


def test_banking77_parts_keep_examples_out_of_the_queries() -> None:
    by_intent = {f"i{n}": [f"i{n} prompt {j}" for j in range(40)] for n in range(40)}
    parts = {part: banking77.configs(by_intent, part) for part in ("dev", "held", "all")}
    assert len(parts["dev"]) == 12 and len(parts["held"]) == 8 and len(parts["all"]) == 16
    assert parts["held"][0][0] == "held10 k=5 s=100"
    assert parts["held"][1][0] == "all31-oos5 k=5 s=100"  # the first 31 intents, whatever the file
    assert parts["all"][-1][0] == "all40-oos7 k=30 s=301"
    for made in parts.values():
        for _, labels, queries in made:
            examples = {text for label in labels for text in label.examples}
            assert not examples & {text for text, _ in queries}
            dropped = {text.split()[0] for text, expected in queries if expected == FALLBACK}
            assert not dropped & {label.name for label in labels}


def test_a_csv_that_is_missing_or_of_another_shape_gets_one_error_line(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    for script, csv_path, expected in [
        ("bench/hwu64.py", tmp_path / "missing.csv", "No such file or directory"),
        ("bench/banking77.py", other, "expected the columns text,category, found ['a', 'b']"),
    ]:
        run = subprocess.run(
            [sys.executable, script, "--csv", str(csv_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        assert run.stderr.splitlines()[-1].endswith(expected), run.stderr
