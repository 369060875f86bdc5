"""Batch jobs run on this machine by vLLM's batch runner (`batch_runner` on the model):

    PYTHON -m vllm.entrypoints.openai.run_batch -i IN.jsonl -o OUT.jsonl \\
        --model MODEL_FOLDER --served-model-name MODEL [ARGS...]

vLLM lives in its own environment (its CPU build pins a transformers older than roi's), so the runner
is a child process of roi, loading the model for the job and exiting when the output file is written.
The job's id names the child; a job whose roi process was killed cannot be polled by the next one
(the child may have died with it), so that input is run again: a job here costs machine time only.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from roi.backends import BatchProgress, Status
from roi.backends.batch_service import BatchLost, Polled
from roi.errors import RoiError
from roi.files import PRIVATE_FILE
from roi.pilot import ModelSpec

RUNNER = "vllm.entrypoints.openai.run_batch"
PROGRESS = re.compile(rb"(\d+)/(\d+) \[")  # the runner's progress bar: "... 7/24 [00:03<00:08, ...]"


class VllmBatchRunner:
    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status) -> None:
        from roi.backends.local.local_models import resolve_model_dir

        runner = spec.batch_runner
        assert runner is not None
        self.spec = spec
        self.python = resolve(runner.python, base_dir)
        missing = missing_runner(spec, base_dir)
        if missing is not None:
            raise RoiError(f"model '{spec.name}': {missing}")
        self.model_dir = resolve_model_dir(runner.model_path, base_dir, status)
        self._jobs: dict[str, tuple[subprocess.Popen[bytes], Path, Path, int]] = {}

    def upload(self, path: Path) -> str:
        return str(path)  # the runner reads the file where it lies

    def find(self, input_ref: str) -> str | None:
        return None  # a runner left by an earlier process is not adopted (see the module's docstring)

    def create(self, input_ref: str, endpoint: str, label: dict[str, str]) -> str:
        runner = self.spec.batch_runner
        assert runner is not None
        source = Path(input_ref)
        number = len(self._jobs) + 1
        output = source.with_name(f"{source.stem}.out-{os.getpid()}-{number}.jsonl")
        log_path = source.with_name(f"{source.stem}.runner-{os.getpid()}-{number}.log")
        command = [
            str(self.python), "-m", RUNNER, "-i", str(source), "-o", str(output),
            "--model", str(self.model_dir), "--served-model-name", self.spec.model, *runner.args,
        ]  # fmt: skip
        # The folder is owner-only (roi.files.private_dir), so the runner's output inherits that protection.
        with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "ab") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **runner.env})
        total = sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
        batch_id = f"vllm-run-batch-{child.pid}"
        self._jobs[batch_id] = (child, output, log_path, total)
        return batch_id

    def poll(self, batch_id: str) -> Polled:
        if batch_id not in self._jobs:
            raise BatchLost(batch_id)
        child, output, log_path, total = self._jobs[batch_id]
        code = child.poll()
        if code is None:
            done = progress_in_log(log_path)
            return Polled(BatchProgress(batch_id, "in_progress", total, done, 0, finished=False))
        if code == 0 and output.exists():
            return Polled(BatchProgress(batch_id, "completed", total, total, 0, finished=True), (str(output),))
        error = f"vLLM's batch runner exited with {code}: {log_tail(log_path)}"
        return Polled(BatchProgress(batch_id, "failed", total, 0, total, finished=True), (), error)

    def read(self, output_ref: str) -> str:
        return Path(output_ref).read_text(encoding="utf-8")

    def describe(self) -> dict[str, str]:
        return {"batch_service": f"python -m {RUNNER}", "python": str(self.python), "model_dir": str(self.model_dir)}

    def close(self) -> None:
        """A job still running stops with roi (the next run runs its input again)."""
        for child, *_ in self._jobs.values():
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


def missing_runner(spec: ModelSpec, base_dir: Path) -> str | None:
    """Why the model's batch runner cannot start (its interpreter is not there); None when it can."""
    if spec.batch_runner is None:
        return None
    python = resolve(spec.batch_runner.python, base_dir)
    return None if python.is_file() else f"batch_runner.python {python} does not exist (build it: make vllm-venv)"


def resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


def progress_in_log(log_path: Path) -> int:
    with log_path.open("rb") as log:
        log.seek(max(0, log_path.stat().st_size - 4096))
        matches = PROGRESS.findall(log.read())
    return int(matches[-1][0]) if matches else 0


def log_tail(log_path: Path, chars: int = 300) -> str:
    text = log_path.read_text(errors="replace").strip() if log_path.exists() else ""
    return " ".join(text[-chars:].split())
