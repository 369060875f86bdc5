"""Validating large and hostile pilot files: a valid pilot of about 5 MB (6 tasks, inline eval rows)
is loaded and validated by `load_pilot`; alias bombs of growing depth are refused. Figures: BENCHMARKS.md.

    python -m benchmarks.yaml_limits [MEGABYTES] [REPEAT]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from roi.errors import RoiError
from roi.pilot import load_pilot

TASKS = 6


def large_pilot(megabytes: float, examples: Path) -> str:
    """A valid pilot whose six tasks carry inline eval rows adding up to about `megabytes` MB; their
    few-shot examples come from `examples` (labels within the scorer's choices)."""
    row = "      - {{input: 'Message {n}: the parcel arrived late and the box was damaged', output: {label}}}\n"
    per_task = int(megabytes * 1_000_000 / TASKS / len(row.format(n=100000, label="late")))
    head = """pilot: large
business_unit: benchmark
owner: bench@example.com
models:
  - {name: m, backend: transformers, model: embedded}
tasks:
"""
    tasks = []
    for t in range(TASKS):
        rows = "".join(row.format(n=n, label=("late", "damaged")[n % 2]) for n in range(per_task))
        tasks.append(
            f"  - name: task{t}\n    instruction: Label the message.\n"
            f"    examples: {examples}\n"
            f"    scorer: {{type: choice, choices: [late, damaged]}}\n    eval:\n{rows}"
        )
    return head + "".join(tasks)


def bomb(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "pilot: bomb\n" + "\n".join(lines) + "\n"


def timed(path: Path, repeat: int) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            loaded = load_pilot(path)
            outcome = f"valid, {sum(len(t.eval_items) for t in loaded.tasks):,} eval rows"
        except RoiError as refused:
            outcome = refused.problems[0].message
        best = min(best, time.perf_counter() - started)
    return best, outcome


def main(megabytes: float, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="roi-yaml-"))
    examples = folder / "examples.csv"
    lines = [
        f"{i},Parcel {i} {'came late' if i % 2 else 'was crushed'},{'late' if i % 2 else 'damaged'}"
        for i in range(1, 11)
    ]
    examples.write_text("id,input,output\n" + "\n".join(lines) + "\n", encoding="utf-8")
    large = folder / "large.yaml"
    large.write_text(large_pilot(megabytes, examples), encoding="utf-8")
    seconds, outcome = timed(large, repeat)
    if not outcome.startswith("valid"):
        raise SystemExit(f"the generated pilot is not valid: {outcome}")
    print(f"| valid pilot, {large.stat().st_size / 1e6:.1f} MB, {TASKS} tasks | {seconds:.2f} s | {outcome} |")
    for levels in (7, 9, 30):
        path = folder / f"bomb{levels}.yaml"
        path.write_text(bomb(levels), encoding="utf-8")
        seconds, outcome = timed(path, repeat)
        print(f"| alias bomb, {levels} nested levels of 9 aliases | {seconds * 1000:.1f} ms | {outcome} |")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
