"""Speed of local evaluation: a naive loop, roi's transformers backend and lm-evaluation-harness on the
same calls of the demo pilot (8 shots single, 4 shots per task mixed), embedded Gemma 3 270M, greedy.

    export ROI_CACHE_DIR=/tmp/roicache          # where the converted model lives (or is converted once)
    .venv/bin/pip install -e '.[bench]'          # lm-eval (or --lm-eval-python of a venv that has it)
    .venv/bin/python benchmarks/bench_speed.py --limit 6

Each system runs in its own subprocess (so peak RSS is its own); the script prints items/s, wall
time, peak RSS, the share of identical answers between each pair, and an estimate of the machine's
limit for the same work (FLOPs and bytes against measured matmul throughput and memory bandwidth).
`roi-run` is the whole `roi run PILOT --fresh` as a user runs it (imports, loading, the output layer's
precision check, generation, latency timing, grading, store, report), timed from outside; `roi` is
generation only (`backend.generate` on a loaded model). The CPU's model and flags head the output.
`--limit N` takes the first N eval items of every task (the naive loop takes minutes per dozen calls
on 2 cores); without it every item runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PILOT = REPO / "pilots" / "superposition-demo.yaml"
SYSTEMS = ("naive", "roi", "lm-eval", "roi-run")
THREADS = [len(os.sched_getaffinity(0))]  # set by --threads


def requests(limit: int | None) -> list[Any]:
    from roi.pilot import load_pilot
    from roi.prompts import build_calls

    calls = build_calls(load_pilot(PILOT), limit)
    return [c.request(c.call_key) for c in calls]


def items_of(key: str) -> int:
    """Scored items a call answers: one for a single call, one per task for a mixed call."""
    return 1 if key.startswith("single:") else 4


def backend(batching: bool) -> Any:
    from roi.backends.local.transformers_backend import TransformersBackend
    from roi.pilot import load_pilot

    spec = load_pilot(PILOT).spec.models[0]
    return TransformersBackend(spec, REPO, lambda _: None, batching=batching)


def run_roi(reqs: list[Any], batching: bool) -> dict[str, Any]:
    import torch

    b = backend(batching)
    torch.set_num_threads(THREADS[0])  # not the backend's load-aware choice: see --threads
    started = time.perf_counter()
    results = list(b.generate(reqs))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "answers": {r.key: r.text for r in results},
        "output_tokens": {r.key: r.output_tokens for r in results},
        "prompt_tokens": {r.key: r.prompt_tokens for r in results},
        "latency_s": {r.key: r.latency_s for r in results},
        "model_bytes": sum(p.numel() * p.element_size() for p in b.model.parameters()),
        "model_dir": str(b.model_dir),
        "threads": b.describe()["threads"],
        "output_layer": b.describe()["output_layer"],
    }


def run_lm_eval(reqs: list[Any], batch_size: int) -> dict[str, Any]:
    """lm-evaluation-harness's `hf` model on the converted model directory, `generate_until` requests
    with the same prompts, greedy, `until` = the call's stop strings, the same token budget."""
    import lm_eval  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from lm_eval.api.instance import Instance  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from lm_eval.models.huggingface import HFLM  # type: ignore[import-untyped,import-not-found,unused-ignore]

    from roi.backends.local.local_models import resolve_model_dir

    model_dir = resolve_model_dir("embedded", REPO, lambda _: None)
    import torch

    torch.set_num_threads(THREADS[0])  # the same threads as roi and the naive loop, for a fair comparison
    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size, add_bos_token=True)
    instances = [
        Instance(
            request_type="generate_until",
            doc={"key": r.key},
            arguments=(r.prompt, {"until": list(r.stop), "max_gen_toks": r.max_new_tokens, "do_sample": False}),
            idx=0,
        )
        for r in reqs
    ]
    started = time.perf_counter()
    texts = lm.generate_until(instances, disable_tqdm=True)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "answers": {r.key: t for r, t in zip(reqs, texts, strict=True)},
        "version": lm_eval.__version__,
    }


def machine_limit(roi: dict[str, Any], reqs: list[Any]) -> dict[str, float]:
    """A lower bound on the time of roi's work: the FLOPs of the tokens it must process (each prefix
    once, each call's own tokens, the output layer at generated positions only) against measured
    matmul throughput, and the weight reads of the sequential decoding steps (the longest answer's,
    as if every call ran in one batch) against measured memory bandwidth; the larger of the two."""
    import torch
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(roi["model_dir"]).get_text_config(decoder=True)
    a = torch.randn(2048, 2048)
    torch.mm(a, a)
    started = time.perf_counter()
    for _ in range(5):
        torch.mm(a, a)
    flops_s = 5 * 2 * 2048**3 / (time.perf_counter() - started)
    big = torch.empty(2**27)  # 512 MiB
    big.copy_(torch.ones(2**27))
    started = time.perf_counter()
    for _ in range(3):
        big.mul_(1.0)
    bytes_s = 3 * 2 * big.numel() * 4 / (time.perf_counter() - started)

    head = cfg.vocab_size * cfg.hidden_size  # the tied output layer, only at generated positions
    body = roi["model_bytes"] / 4 - head
    first_of_prefix = {r.prefix: r for r in reversed(reqs)}
    prompt_tokens = sum(roi["prompt_tokens"].values())
    prefix_tokens = sum(_prefix_len(r, roi) for r in first_of_prefix.values())
    # Tokens that must go through the body at least once: each prefix once, each call's own part.
    fed = prefix_tokens + sum(roi["prompt_tokens"][r.key] - _prefix_len(r, roi) for r in reqs)
    generated = sum(roi["output_tokens"].values())
    flops = 2 * body * (fed + generated) + 2 * head * generated
    # Decoding is sequential: at least the longest answer's steps, each reading every weight once.
    steps = max(roi["output_tokens"].values())
    weight_bytes = steps * roi["model_bytes"]
    return {
        "matmul_gflop_s": flops_s / 1e9,
        "bandwidth_gb_s": bytes_s / 1e9,
        "work_gflop": flops / 1e9,
        "weight_reads_gb": weight_bytes / 1e9,
        "limit_s": max(flops / flops_s, weight_bytes / bytes_s),
        "prompt_tokens_total": float(prompt_tokens),
        "tokens_fed_min": float(fed),
    }


def _prefix_len(request: Any, roi: dict[str, Any]) -> int:
    if request.prefix not in _PREFIX_TOKENS:
        _PREFIX_TOKENS[request.prefix] = _count(request.prefix, roi["model_dir"])
    return _PREFIX_TOKENS[request.prefix]


_PREFIX_TOKENS: dict[str, int] = {}
_TOKENIZERS: dict[str, Any] = {}


def _count(text: str, model_dir: str) -> int:
    from transformers import AutoTokenizer

    if model_dir not in _TOKENIZERS:  # not setdefault: that would load the tokenizer on every call
        _TOKENIZERS[model_dir] = AutoTokenizer.from_pretrained(model_dir)
    tok = _TOKENIZERS[model_dir]
    return len(tok(text).input_ids)


def run_whole(limit: int | None) -> dict[str, Any]:
    """`roi run` of the demo pilot in a new process, every call sent to the model (`--fresh`), into a
    folder of its own: wall time from start to exit, answers read back from the run's calls.csv."""
    import csv
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="bench-roi-run-"))
    cmd = [sys.executable, "-m", "roi", "run", str(PILOT), "--fresh", "--quiet", "--out", str(out)]
    cmd += ["--limit", str(limit)] if limit else []
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    (calls_csv,) = out.glob("*/*/calls.csv")
    with calls_csv.open(encoding="utf-8") as f:
        answers = {row["call_id"].split("/", 1)[1]: row["raw_output"] for row in csv.DictReader(f)}
    return {"wall_s": wall, "answers": answers, "out": str(out)}


def child(system: str, limit: int | None, batch_size: int, out: Path) -> None:
    reqs = requests(limit)
    if system == "roi-run":
        result = run_whole(limit)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result["calls"], result["items"] = len(reqs), sum(items_of(r.key) for r in reqs)
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        return
    result = run_lm_eval(reqs, batch_size) if system == "lm-eval" else run_roi(reqs, batching=system == "roi")
    # Before the machine-limit probe, whose 1 GB of test buffers are not the run's.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if system == "roi":
        result["limit"] = machine_limit(result, reqs)
    result["calls"] = len(reqs)
    result["items"] = sum(items_of(r.key) for r in reqs)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")


def same_share(a: dict[str, str | None], b: dict[str, str | None]) -> float:
    keys = a.keys() & b.keys()
    return sum((a[k] or "").strip() == (b[k] or "").strip() for k in keys) / max(1, len(keys))


def parsed_same_share(a: dict[str, str], b: dict[str, str], limit: int | None) -> float:
    """Share of calls whose scored answers (parsed as roi scores them) are the same in both."""
    from roi.pilot import load_pilot
    from roi.prompts import build_calls, parse_answers

    calls = {c.call_key: c for c in build_calls(load_pilot(PILOT), limit)}
    keys = sorted(set(a) & set(b))
    same = sum(parse_answers(calls[k], a[k] or "") == parse_answers(calls[k], b[k] or "") for k in keys)
    return same / max(1, len(keys))


def report(results: dict[str, dict[str, Any]], limit: int | None = None) -> None:
    from roi.backends.local.precision import cpu_description

    print(f"cpu: {cpu_description()}")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    for name, r in results.items():
        print(
            f"{name:8s} calls={r['calls']} items={r['items']} wall={r['wall_s']:.1f}s "
            f"items/s={r['items'] / r['wall_s']:.2f} peak_rss={r['peak_rss_mb']:.0f}MB"
        )
    names = list(results)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            share = same_share(results[x]["answers"], results[y]["answers"])
            parsed = parsed_same_share(results[x]["answers"], results[y]["answers"], limit)
            speedup = results[x]["wall_s"] / results[y]["wall_s"]
            print(
                f"{x} vs {y}: identical answers {share:.1%} (parsed as scored: {parsed:.1%}); "
                f"wall time {x} / {y} = {speedup:.2f}"
            )
    if "roi" in results:
        roi = results["roi"]
        lim = roi["limit"]
        print(f"roi output layer: {roi.get('output_layer', 'not recorded')}; threads {roi['threads']}")
        print(
            f"model in memory {roi['model_bytes'] / 2**20:.0f}MB; roi peak RSS / model = "
            f"{roi['peak_rss_mb'] * 2**20 / roi['model_bytes']:.2f}"
        )
        print(
            f"machine: matmul {lim['matmul_gflop_s']:.0f} GFLOP/s, bandwidth {lim['bandwidth_gb_s']:.1f} GB/s; "
            f"work {lim['work_gflop']:.0f} GFLOP, weight reads {lim['weight_reads_gb']:.0f} GB -> "
            f"limit {lim['limit_s']:.1f}s; roi at {lim['limit_s'] / roi['wall_s']:.0%} of the limit"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="eval items per task (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    parser.add_argument("--lm-eval-batch-size", type=int, default=16)
    parser.add_argument(
        "--threads",
        type=int,
        default=THREADS[0],
        help="torch threads for every system (default: all usable CPUs; roi's own choice follows the load "
        "average, which lags a minute behind the previous system's run)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-speed.json"), help="all figures as JSON")
    parser.add_argument(
        "--lm-eval-python",
        default=sys.executable,
        help="interpreter of a virtual environment holding lm-eval (with torch, transformers and roi's "
        "dependencies), when it is not installed beside roi; roi is found through PYTHONPATH",
    )
    parser.add_argument("--reuse", action="store_true", help="keep a system's figures from an earlier run")
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    THREADS[0] = args.threads
    if args.child:
        child(args.child, args.limit, args.lm_eval_batch_size, args.child_out)
        return
    results: dict[str, dict[str, Any]] = {}
    for system in args.systems.split(","):
        out = args.out.with_suffix(f".{system}.json")
        python = args.lm_eval_python if system == "lm-eval" else sys.executable
        cmd = [python, __file__, "--child", system, "--child-out", str(out)]
        cmd += ["--lm-eval-batch-size", str(args.lm_eval_batch_size), "--threads", str(args.threads)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        if not (args.reuse and out.exists()):
            print(f"running {system} ...", flush=True)
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        results[system] = json.loads(out.read_text(encoding="utf-8"))
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    report(results, args.limit)


if __name__ == "__main__":
    main()
