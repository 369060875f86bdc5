"""Side by side on the demo pilot: roi's own local engine against the same model served by vLLM's CPU
server on this machine. Each is one whole `roi run --fresh` in its own process (load, generation,
grading, store, report), the vLLM one through the openai backend (completions, `--concurrency` calls in
flight) to a server started beforehand (its start is timed apart). Reported: wall time and items/s,
parsed answers identical or not, accuracy, and peak memory (proportional set size of the roi process tree,
and of the server's process tree during the run). Figures: BENCHMARKS.md.

    make vllm-venv
    ROI_CACHE_DIR=... .venv/bin/python -m benchmarks.vllm_side_by_side [--limit N] [--concurrency 32]
        [--vllm-env VAR=VALUE ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tests.api_runs import demo_pilot_file
from tests.servers import VllmServer
from tests.servers.vllm import SERVED_NAME

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "pilots" / "superposition-demo.yaml"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    system: str
    wall_s: float
    items: int
    correct: int
    peak_roi_mib: float
    peak_server_mib: float | None

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s


class PeakMemory:
    """The highest summed proportional set size (PSS: each shared page divided among the processes
    sharing it, so a tree's pages are counted once) of some processes and their descendants, sampled
    every 0.25 s."""

    def __init__(self, roots: Callable[[], list[int]]) -> None:
        self.roots = roots
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_bytes = max(self.peak_bytes, sum(tree_pss(pid) for pid in self.roots()))


def tree_pss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_full_info().pss
    return total


def timed_run(system: str, pilot: Path, out: Path, limit: int | None, server: VllmServer | None) -> Measured:
    command = [sys.executable, "-m", "roi", "run", str(pilot), "--out", str(out), "--fresh", "--quiet"]
    command += ["--limit", str(limit)] if limit else []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    roi = subprocess.Popen(command, env=env)
    server_pid = server.process.pid if server and server.process else None
    roots = [server_pid] if server_pid else []
    with PeakMemory(lambda: [roi.pid]) as roi_peak, PeakMemory(lambda: roots) as server_peak:
        code = roi.wait()
    wall_s = time.perf_counter() - started
    if code not in (0, 3):  # 3: the decision regressed, which says nothing about speed
        raise SystemExit(f"{system}: roi run exited with {code}")
    items, correct = item_counts(out / "roi.db")
    server_mib = server_peak.peak_bytes / MIB if server_pid else None
    return Measured(system, wall_s, items, correct, roi_peak.peak_bytes / MIB, server_mib)


def item_counts(db_path: Path) -> tuple[int, int]:
    with sqlite3.connect(db_path) as db:
        total, correct = db.execute("SELECT COUNT(*), SUM(correct) FROM items").fetchone()
    return int(total), int(correct or 0)


def answers(db_path: Path) -> dict[tuple[str, str, str], str | None]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT mode, task, item_id, answer FROM items").fetchall()
    return {(mode, task, item): answer for mode, task, item, answer in rows}


def identical(a: dict[tuple[str, str, str], str | None], b: dict[tuple[str, str, str], str | None]) -> dict[str, str]:
    shared = a.keys() & b.keys()
    out = {}
    for mode in ("single", "mixed", "all"):
        keys = [k for k in shared if mode in ("all", k[0])]
        out[mode] = f"{sum(a[k] == b[k] for k in keys)}/{len(keys)}"
    return out


def machine() -> dict[str, Any]:
    pairs = (line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    info = {key.strip(): value.strip() for key, value in pairs}
    cpu, flags = info.get("model name", ""), info.get("flags", "").split()
    wanted = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "flags": [f for f in wanted if f in flags],
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="eval items per task (default: all)")
    parser.add_argument("--concurrency", type=int, default=32, help="max_concurrency of the vLLM model")
    parser.add_argument("--vllm-env", action="append", default=[], help="VAR=VALUE for the vLLM server")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    from roi.backends.local.local_models import resolve_model_dir

    record: dict[str, Any] = machine() | {"limit": args.limit, "concurrency": args.concurrency}
    folder = Path(tempfile.mkdtemp(prefix="roi-vllm-side-by-side-"))
    local = timed_run("roi local engine", DEMO, folder / "local", args.limit, None)
    extra_env = dict(item.split("=", 1) for item in args.vllm_env)
    server = ServerWithEnv(resolve_model_dir("embedded", REPO, print), folder, extra_env)
    started = time.perf_counter()
    server.start()
    record["vllm_start_s"] = time.perf_counter() - started
    try:
        model = {"name": "vllm", "backend": "openai", "model": SERVED_NAME, "base_url": server.base_url,
                 "endpoint": "completions", "max_concurrency": args.concurrency}  # fmt: skip
        pilot = demo_pilot_file(folder, [model], name="superposition-demo-vllm")
        served = timed_run("vLLM CPU server", pilot, folder / "vllm", args.limit, server)
    finally:
        server.stop()
    record |= {
        "vllm_env": extra_env,
        "runs": [asdict(m) | {"items_per_s": m.items_per_s} for m in (local, served)],
        "identical_parsed_answers": identical(
            answers(folder / "local" / "roi.db"), answers(folder / "vllm" / "roi.db")
        ),
        "load_average_at_end": os.getloadavg(),
    }
    print(table(record, local, served))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


class ServerWithEnv(VllmServer):
    def __init__(self, model: Path, log_dir: Path, extra_env: dict[str, str]) -> None:
        super().__init__(model, log_dir)
        self.extra_env = extra_env

    def environment(self) -> dict[str, str]:
        return {**super().environment(), **self.extra_env}


def table(record: dict[str, Any], local: Measured, served: Measured) -> str:
    same = record["identical_parsed_answers"]
    lines = [
        f"{record['date']} commit {record['commit']}, {record['cpu']} ({record['cores']} cores; "
        f"{', '.join(record['flags'])}), load average {record['load_average_at_start'][0]:.1f} at start, "
        f"vLLM server start {record['vllm_start_s']:.0f} s, max_concurrency {record['concurrency']}",
        "",
        "| system | wall (whole roi run) | items/s | correct | peak memory roi (PSS) | peak memory server (PSS) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in (local, served):
        server_mib = f"{m.peak_server_mib:.0f} MiB" if m.peak_server_mib is not None else "–"
        lines.append(
            f"| {m.system} | {m.wall_s:.1f} s | {m.items_per_s:.2f} | {m.correct}/{m.items} "
            f"| {m.peak_roi_mib:.0f} MiB | {server_mib} |"
        )
    lines += ["", f"identical parsed answers: single {same['single']}, mixed {same['mixed']}, all {same['all']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
