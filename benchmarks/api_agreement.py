"""Agreement of parsed answers: the embedded model through the transformers backend and through
llama.cpp's server (openai backend, completions), on the same demo items. Figures: BENCHMARKS.md.

    ROI_CACHE_DIR=... python -m benchmarks.api_agreement [LIMIT]
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from roi.pilot import load_pilot
from roi.runner import RunOptions, run_pilot
from tests.api_runs import with_models
from tests.servers import LlamaServer, embedded_gguf_path
from tests.test_openai_backend import api_model

REPO = Path(__file__).resolve().parent.parent


def main(limit: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="roi-agreement-"))
    server = LlamaServer(embedded_gguf_path(), folder).start()
    try:
        demo = load_pilot(REPO / "pilots" / "superposition-demo.yaml")
        api = api_model("llama", server.base_url, endpoint="completions", max_concurrency=2)
        result = run_pilot(with_models(demo, [demo.spec.models[0], api]), RunOptions(out_dir=folder, limit=limit))
    finally:
        server.stop()
    db = sqlite3.connect(result.db_path)
    rows = db.execute(
        "SELECT a.mode, a.answer IS b.answer, l.latency_s, r.latency_s FROM items a"
        " JOIN items b ON a.run_id = b.run_id AND a.mode = b.mode AND a.task = b.task AND a.item_id = b.item_id"
        " JOIN calls l ON l.run_id = a.run_id AND l.call_id = a.call_id"
        " JOIN calls r ON r.run_id = b.run_id AND r.call_id = b.call_id"
        " WHERE a.model = ? AND b.model = 'llama' AND a.run_id = ?",
        (demo.spec.models[0].name, result.run_id),
    ).fetchall()
    for mode in ("single", "mixed"):
        same = [r[1] for r in rows if r[0] == mode]
        print(f"{mode}: {sum(same)} of {len(same)} items identical")
    print(f"all: {sum(r[1] for r in rows)} of {len(rows)}; store: {result.db_path}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
