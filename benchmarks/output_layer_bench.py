"""Time of one output-layer pass per format on this CPU: the bfloat16 and float16 screens (screen, then
float64 among the candidates) against the float32 product, on real final hidden states of the embedded
model, at several row counts; the three interleaved in every round, fastest of `--rounds` counted.

    ROI_CACHE_DIR=... .venv/bin/python benchmarks/output_layer_bench.py [--rows 1 8 32] [--rounds 5]

It prints the CPU's model and flags, the load average before and after, and two tables in
milliseconds: wall time (what roi's own load-time choice measures, in brief: roi/backends/local/
precision.py) and this process's CPU time, which with `--threads 1` is the work itself even while
other jobs share the cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from roi.backends.local.local_models import resolve_model_dir
from roi.backends.local.output_layer import FORMATS, OutputLayer, Screen, mapped_matrix, read_through
from roi.backends.local.precision import accumulates_in_float32, cpu_description

REPO = Path(__file__).resolve().parent.parent
TEXT = (
    "Give the capital city of the country.\nFrance -> Paris\nJapan -> Tokyo\nItaly -> Rome\n"
    "A[1] (number_en) 45 -> forty-five\nA[2] (en_fr) white -> blanc\nA[3] (upper) river -> RIVER\n" * 3
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all usable CPUs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model_dir("embedded", REPO, print)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    model.eval()
    with torch.inference_mode():
        hidden = model.get_decoder()(input_ids=tokenizer(TEXT, return_tensors="pt").input_ids).last_hidden_state[0]
    mapped = mapped_matrix(model_dir, model.get_output_embeddings().weight.detach())
    assert mapped is not None, "the embedded model's matrix maps from its safetensors file"
    read_through(model, mapped)
    layers = {name: OutputLayer(model, Screen.of(mapped.tensor, fmt)) for name, fmt in FORMATS.items()}
    layers["float32"] = OutputLayer(model)
    print(f"cpu: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"float32 accumulation: { ({n: accumulates_in_float32(f, hidden.shape[1]) for n, f in FORMATS.items()}) }")
    print(f"load average before: {os.getloadavg()}")
    best = {(name, rows): float("inf") for name in layers for rows in args.rows}
    cpu = dict(best)  # CPU seconds of this process: with one thread, the work itself, whatever the load
    with torch.inference_mode():
        for _ in range(args.rounds):
            for rows in args.rows:
                batch = hidden[torch.arange(rows) % hidden.shape[0]]
                for name, layer in layers.items():
                    started, cpu_started = time.perf_counter(), time.process_time()
                    layer.greedy(batch)
                    best[(name, rows)] = min(best[(name, rows)], time.perf_counter() - started)
                    cpu[(name, rows)] = min(cpu[(name, rows)], time.process_time() - cpu_started)
    print(f"load average after: {os.getloadavg()}")
    for label, table in (("wall", best), ("cpu", cpu)):
        print("rows  " + "  ".join(f"{name:>9s}" for name in layers) + f"   ({label} ms, fastest of rounds)")
        for rows in args.rows:
            print(f"{rows:4d}  " + "  ".join(f"{1000 * table[(name, rows)]:9.1f}" for name in layers))


if __name__ == "__main__":
    main()
