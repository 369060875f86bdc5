"""Batch jobs run on this machine by vLLM's batch runner (`batch_runner` on the model):

    $ROI_VLLM_PYTHON -m vllm.entrypoints.openai.run_batch -i IN.jsonl -o OUT.jsonl \\
        --model MODEL_FOLDER --served-model-name MODEL [ARGS...]

vLLM lives in its own environment (its CPU build pins a transformers older than roi's), so the runner
is a child process of roi, loading the model for the job and exiting when the output file is written.

Who decides what runs: the interpreter is named by whoever runs roi (`ROI_VLLM_PYTHON`), never by the
pilot file, and the module is fixed; the pilot's `args` and `env` are limited to engine settings
(roi/pilot.py `BatchRunner`), and vLLM's usage statistics are always off.

The runner is roi's for the job's life only: a small supervisor (LAUNCH) leads a process group holding
the runner and the engine processes it starts; `close` ends the group, and if roi dies first, even by
SIGKILL, the kernel tells the supervisor, which ends the group itself. A job whose roi process ended
cannot be polled by the next one, so that input is run again: a job here costs machine time only. A
runner whose log has not grown for `stall_s` is stopped and its job counted as failed, so a hung engine
cannot hold a run for ever.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from roi.backends import BatchProgress, Status
from roi.backends.batch_service import BatchLost, Polled
from roi.errors import RoiError
from roi.files import PRIVATE_FILE
from roi.pilot import ModelSpec

RUNNER = "vllm.entrypoints.openai.run_batch"
PYTHON_VARIABLE = "ROI_VLLM_PYTHON"
PROGRESS = re.compile(rb"(\d+)/(\d+) \[")  # the runner's progress bar: "... 7/24 [00:03<00:08, ...]"
# Set for every runner (and every vLLM the tests start): vLLM otherwise reports usage statistics.
NO_TELEMETRY = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
# The runner's supervisor, run by vLLM's interpreter: it leads the runner's process group, asks the
# kernel for SIGTERM when roi's thread that started it ends (PR_SET_PDEATHSIG = 1, even if roi is
# SIGKILLed), checks roi did not end before that, and runs the runner as its child. On SIGTERM (roi
# gone, or roi stopping the job) it stops the whole group politely, then for good after 20 s: the
# engine processes the runner started do not stop with it.
LAUNCH = """\
import ctypes, os, signal, subprocess, sys, time
stopping = []
signal.signal(signal.SIGTERM, lambda number, frame: stopping.append(number))
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
os.getppid() == int(sys.argv[1]) or sys.exit(70)
runner = subprocess.Popen([sys.executable, *sys.argv[2:]])
while runner.poll() is None and not stopping:
    time.sleep(0.5)
if stopping:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(0, signal.SIGKILL)
sys.exit(runner.returncode)
"""


@dataclass
class RunnerJob:
    child: subprocess.Popen[bytes]
    output: Path
    log: Path
    total: int
    log_size: int = 0
    grew_at: float = field(default_factory=time.monotonic)  # when the log last grew

    def stalled(self, stall_s: float) -> bool:
        size = self.log.stat().st_size if self.log.exists() else 0
        if size != self.log_size:
            self.log_size, self.grew_at = size, time.monotonic()
        return time.monotonic() - self.grew_at > stall_s


class VllmBatchRunner:
    stall_s = 1800.0  # a class attribute so tests can shorten it

    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status) -> None:
        from roi.backends.local.local_models import resolve_model_dir

        runner = spec.batch_runner
        assert runner is not None
        missing = missing_runner(spec, base_dir)
        if missing is not None:
            raise RoiError(f"model '{spec.name}': {missing}")
        self.spec = spec
        self.python = runner_python()
        self.model_dir = resolve_model_dir(runner.model_path, base_dir, status)
        self._jobs: dict[str, RunnerJob] = {}

    def upload(self, path: Path) -> str:
        return str(path)  # the runner reads the file where it lies

    def find(self, input_ref: str) -> str | None:
        return None  # a runner left by an earlier process is not adopted (see the module's docstring)

    def create(self, input_ref: str, endpoint: str, label: dict[str, str]) -> str:
        source = Path(input_ref)
        number = len(self._jobs) + 1
        output = source.with_name(f"{source.stem}.out-{os.getpid()}-{number}.jsonl")
        log_path = source.with_name(f"{source.stem}.runner-{os.getpid()}-{number}.log")
        # The folder is owner-only (roi.files.private_dir), so the runner's output inherits that protection.
        with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "ab") as log:
            child = subprocess.Popen(
                self.command(source, output), stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                start_new_session=True,
            )  # fmt: skip
        total = sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.strip())
        batch_id = f"vllm-run-batch-{child.pid}"
        self._jobs[batch_id] = RunnerJob(child, output, log_path, total)
        return batch_id

    def command(self, source: Path, output: Path) -> list[str]:
        runner = self.spec.batch_runner
        assert runner is not None
        return supervised(
            self.python, "-m", RUNNER, "-i", str(source), "-o", str(output),
            "--model", str(self.model_dir), "--served-model-name", self.spec.model, *runner.args,
        )  # fmt: skip

    def environment(self) -> dict[str, str]:
        runner = self.spec.batch_runner
        assert runner is not None
        return {**os.environ, **runner.env, **NO_TELEMETRY}

    def poll(self, batch_id: str) -> Polled:
        job = self._jobs.get(batch_id)
        if job is None:
            raise BatchLost(batch_id)
        code = job.child.poll()
        if code is None and job.stalled(self.stall_s):
            stop_group(job.child)
            error = f"vLLM's batch runner stopped: its log did not grow for {self.stall_s:g} s: {log_tail(job.log)}"
            return Polled(BatchProgress(batch_id, "failed", job.total, 0, job.total, finished=True), (), error)
        if code is None:
            done = progress_in_log(job.log)
            return Polled(BatchProgress(batch_id, "in_progress", job.total, done, 0, finished=False))
        if code == 0 and job.output.exists():
            progress = BatchProgress(batch_id, "completed", job.total, job.total, 0, finished=True)
            return Polled(progress, (str(job.output),))
        error = f"vLLM's batch runner exited with {code}: {log_tail(job.log)}"
        return Polled(BatchProgress(batch_id, "failed", job.total, 0, job.total, finished=True), (), error)

    def read(self, output_ref: str) -> str:
        return Path(output_ref).read_text(encoding="utf-8")

    def describe(self) -> dict[str, str]:
        return {"batch_service": f"python -m {RUNNER}", "python": str(self.python), "model_dir": str(self.model_dir)}

    def close(self) -> None:
        """A job still running stops with roi (the next run runs its input again)."""
        for job in self._jobs.values():
            stop_group(job.child)


def supervised(python: Path, *arguments: str) -> list[str]:
    """The command that runs `python ARGUMENTS` under LAUNCH's supervisor, tied to this process; start it
    with `start_new_session=True` so that the supervisor leads the group it ends."""
    return [str(python), "-c", LAUNCH, str(os.getpid()), *arguments]


def stop_group(child: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """End the runner and every process it started (its engine), politely first."""
    if child.poll() is not None:
        _signal_group(child.pid, signal.SIGKILL)  # the leader is gone; what it started may not be
        return
    _signal_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace_s)
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _signal_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal_number)


def runner_python() -> Path:
    return Path(os.environ.get(PYTHON_VARIABLE, "")).expanduser()


def missing_runner(spec: ModelSpec, base_dir: Path) -> str | None:
    """Why the model's batch runner cannot start (no interpreter named, or not there); None when it can."""
    if spec.batch_runner is None:
        return None
    setting = os.environ.get(PYTHON_VARIABLE)
    if not setting:
        return (
            f"batch_runner needs {PYTHON_VARIABLE}, the python of the environment vLLM is installed in "
            "(make vllm-venv builds .venv-vllm)"
        )
    python = runner_python()
    if not python.is_absolute():
        return f"{PYTHON_VARIABLE}={setting} is not an absolute path"
    return None if python.is_file() else f"{PYTHON_VARIABLE}={python} does not exist (build it: make vllm-venv)"


def progress_in_log(log_path: Path) -> int:
    with log_path.open("rb") as log:
        log.seek(max(0, log_path.stat().st_size - 4096))
        matches = PROGRESS.findall(log.read())
    return int(matches[-1][0]) if matches else 0


def log_tail(log_path: Path, chars: int = 300) -> str:
    text = log_path.read_text(errors="replace").strip() if log_path.exists() else ""
    return " ".join(text[-chars:].split())
