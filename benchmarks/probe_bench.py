"""Wall time of roi's probe scoring vs the paper's reference, on the example pilot's prompts.

    ROI_CACHE_DIR=/tmp/roicache .venv/bin/python benchmarks/probe_bench.py \
        [--prompts 12] [--k 2 3 5] [--repeat 3] [--threads 1]

For each prompt of pilots/superposition-probe.yaml (spread over its mixtures) and each K, the
candidates are the three tasks' answers plus distractor numbers' answers up to K. Both methods score
the same candidates; the script prints the wall times, the speed-up and the worst relative
difference of the probabilities (float32). Scoring only: the beam-search top-K check is not timed.
With --repeat N each prompt is timed N times by each method, alternating, and the fastest time of each
counts: on a shared machine a burst of other work then inflates neither method's figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from roi import probe
from roi.backends.local import teacher_forcing
from roi.backends.local.local_models import resolve_model_dir
from roi.pilot import load_pilot

PILOT = Path(__file__).resolve().parent.parent / "pilots" / "superposition-probe.yaml"


def candidates_for(prompt: probe.ProbePrompt, k: int) -> list[str]:
    answers = list(prompt.answers.values())
    extra = [f"{w}-{n}" for n in range(2, 10) for w in ("forty", "soixante")]  # plausible distractors
    return [probe.candidate(a) for a in (answers + extra)[:k]]


def timed(fn: object, *args: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        # One thread can keep the ratio steadier when another job holds a core: two torch threads sharing
        # one free core wait on each other, and that wait can swamp the difference between the methods.
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model_dir("embedded", PILOT.parent, print)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    model.eval()  # inference mode: no dropout
    prompts = probe.build_prompts(load_pilot(PILOT))
    prompts = prompts[:: max(1, len(prompts) // args.prompts)][: args.prompts]
    lengths = [len(tokenizer(p.text).input_ids) for p in prompts]
    print(f"torch threads {torch.get_num_threads()}; {len(prompts)} prompts, {min(lengths)}-{max(lengths)} tokens")
    teacher_forcing.score_candidates(model, tokenizer, prompts[0].text, candidates_for(prompts[0], 2))  # warm-up
    print("K  roi_s  reference_s  speedup  target(0.8K)  worst_rel_diff")
    for k in args.k:
        ours = ref = 0.0
        worst = 0.0
        for prompt in prompts:
            cands = candidates_for(prompt, k)
            t_ours = t_ref = float("inf")
            for _ in range(args.repeat):
                t, fast = timed(teacher_forcing.score_candidates, model, tokenizer, prompt.text, cands)
                t_ours = min(t_ours, t)
                t, slow = timed(teacher_forcing.reference_scores, model, tokenizer, prompt.text, cands)
                t_ref = min(t_ref, t)
            ours, ref = ours + t_ours, ref + t_ref
            for f, r in zip(fast, slow, strict=True):  # type: ignore[call-overload]
                worst = max(worst, abs(f.probability - r) / r)
        print(f"{k}  {ours:.2f}  {ref:.2f}  {ref / ours:.1f}x  {0.8 * k:.1f}x  {worst:.1e}")


if __name__ == "__main__":
    main()
