"""Wall time of roi's probe scoring vs the paper's reference, on the example pilot's prompts.

    ROI_CACHE_DIR=/tmp/roicache .venv/bin/python benchmarks/probe_bench.py \
        [--prompts 12] [--k 2 3 5] [--repeat 3] [--threads 1]

For each prompt of pilots/superposition-probe.yaml (spread over its mixtures) and each K, the
candidates are the three tasks' answers plus distractor numbers' answers up to K. Both methods score
the same candidates; the script prints the wall times, the speed-up and the worst relative
difference of the probabilities (float32). With --repeat N each prompt is timed N times by each method,
alternating, and the fastest time of each counts: on a shared machine a burst of other work then
inflates neither method's figure.

Then the probe as `roi run` does it, per prompt: teacher forcing of the tasks' answers (the prompt's
pass included) and the top-K search (`top_answers`, over the prompt's kept cache), timed apart, with
the number of continuations the search expanded; the sum over the pilot's 120 prompts is extrapolated.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from roi.backends.local import teacher_forcing
from roi.backends.local.local_models import resolve_model_dir
from roi.pilot import load_pilot
from roi.probe import prompts as probe

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
    parser.add_argument("--k", type=int, nargs="*", default=[2, 3, 5], help="K values (none: only the run-like timing)")
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
    probe_as_run(model, tokenizer, prompts, len(probe.build_prompts(load_pilot(PILOT))))


def probe_as_run(model: Any, tokenizer: Any, prompts: list[probe.ProbePrompt], total: int) -> None:
    """Teacher forcing and the top-K search per prompt, as the local backend scores a probe prompt, timed
    apart (TransformersBackend.score_continuations)."""
    expanded = [0]
    expand = teacher_forcing._expand

    def counting(model: Any, ids: list[int], nodes: list[Any], device: Any) -> None:
        expanded[0] += len(nodes)
        expand(model, ids, nodes, device)

    teacher_forcing._expand = counting
    forcing = search = 0.0
    for prompt in prompts:
        cands = [probe.candidate(a) for a in prompt.answers.values()]
        width = sum(1 for s in prompt.shares.values() if s > 0)
        teacher_forcing._LAST_PREFIX.clear()  # as in a run, the prompt's pass is the scoring's
        t, scored = timed(teacher_forcing.score_candidates, model, tokenizer, prompt.text, cands)
        forcing += t
        longest = max(s.tokens for s in scored)  # type: ignore[attr-defined]
        t, _ = timed(teacher_forcing.top_answers, model, tokenizer, prompt.text, width, longest + 1)
        search += t
    teacher_forcing._expand = expand
    n = len(prompts)
    print(f"as roi run probes ({n} prompts): teacher forcing {forcing:.2f} s ({forcing / n:.2f} s/prompt, prompt pass")
    print(f"  included), top-K search {search:.2f} s ({search / n:.2f} s/prompt, {expanded[0] / n:.1f} continuations")
    print(f"  expanded per prompt); for the pilot's {total} prompts about {(forcing + search) * total / n:.0f} s")


if __name__ == "__main__":
    main()
