"""Local causal LMs with PyTorch and transformers: greedy decoding, stop at the end of the answer.

Requests run through `PrefixBatcher` (each shared prefix once, rows of every prefix batched together); the naive
path (one `model.generate` per request, `batching=False`) is kept as the reference the tests compare
against. Latency of a batched call is not the batch's wall time: see `docs/speed.md`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from roi.backends import (
    TEACHER_FORCING,
    CandidateScore,
    ContinuationQuery,
    ContinuationScores,
    GenerationRequest,
    GenerationResult,
    Status,
)
from roi.backends.local import precision
from roi.backends.local.local_models import resolve_model_dir
from roi.backends.local.memory import pick_threads, return_large_blocks, trim_heap
from roi.backends.local.precision import Choice
from roi.backends.local.prefix_batching import Generated, PrefixBatcher, Row
from roi.backends.local.teacher_forcing import score_candidates, top_answers
from roi.backends.text import answer_text, cut_at_stop
from roi.errors import RunFailed
from roi.pilot import ModelSpec


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RunFailed("device 'cuda' was asked for but PyTorch sees no CUDA device")
    return requested


def pick_dtype(requested: str, device: str) -> Any:
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        # Half precision halves memory traffic; bfloat16 keeps float32's range where the GPU has it.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# A few lines in the shape of the pilots' prompts: their last hidden states check and time the screen.
_SAMPLE_TEXT = (
    "Give the capital city of the country.\nFrance -> Paris\nJapan -> Tokyo\nItaly ->"
    " Rome\nA[1] (number_en) 45 -> forty-five\nA[2] (en_fr) white -> blanc\nA[3] (upper) river -> RIVER"
)


class TransformersBackend:
    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status, *, batching: bool = True) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.spec = spec
        self.model_dir = resolve_model_dir(spec.model, base_dir, status)
        self.device = pick_device(spec.device)
        self.dtype = pick_dtype(spec.dtype, self.device)
        status(f"Loading {spec.name} from {self.model_dir} on {self.device} ({str(self.dtype).split('.')[-1]})")
        if self.device == "cpu":
            pick_threads(torch)
            return_large_blocks()  # before loading: the tokenizer's parse already fragments the heap
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=self.dtype, local_files_only=True)
        self.model = model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self._torch = torch
        self.batching = batching
        self.precision: Choice | None = None
        self._screen_released = False
        # The naive reference path keeps the model as loaded (its `generate` reads the whole output layer).
        output = self._output_layer(status) if batching else None
        if self.device == "cpu":
            trim_heap()
        self._batcher = PrefixBatcher(
            self.model, self.tokenizer, self.device, max_batch=spec.max_batch, output=output, share_prefixes=batching
        )

    def _output_layer(self, status: Status) -> Any:
        """The output layer in the precision asked for or measured (roi/backends/local/precision.py),
        announced in the run's header."""
        output, self.precision = precision.output_layer(
            self.model, self.model_dir, self.device, self.spec.precision, self._sample_hidden()
        )
        status(f"Output layer: {self.precision.describe()}")
        return output

    def _sample_hidden(self) -> Any:
        """Final hidden states of a short text: real rows to check and time the output layer on."""
        ids = self.tokenizer(_SAMPLE_TEXT, return_tensors="pt").input_ids.to(self.device)
        with self._torch.inference_mode():
            return self.model.get_decoder()(input_ids=ids).last_hidden_state[0]

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        """Teacher forcing (roi/backends/local/teacher_forcing.py): each candidate's probability after
        the prompt, exact, and the model's own top continuations (teacher_forcing.top_answers)."""
        if self.batching and not self._screen_released:
            self._batcher.release_screen()  # teacher forcing reads the whole output layer: no half copy beside it
            self._screen_released = True
        scored = score_candidates(self.model, self.tokenizer, query.prompt, query.candidates)
        longest = max(s.tokens for s in scored)
        top = top_answers(self.model, self.tokenizer, query.prompt, max(query.top_k, 1), longest + 1)
        prompt_tokens = len(self.tokenizer(query.prompt, add_special_tokens=True).input_ids)
        candidates = [CandidateScore(s.logprob, s.tokens) for s in scored]
        return ContinuationScores(TEACHER_FORCING, prompt_tokens, candidates, top)

    def count_tokens(self, text: str) -> int | None:
        return len(self.tokenizer(text, add_special_tokens=True).input_ids)

    def describe(self) -> dict[str, str]:
        import transformers

        return {
            "torch": self._torch.__version__,
            "transformers": transformers.__version__,
            "device": self.device,
            "dtype": str(self.dtype).split(".")[-1],
            "model_dir": str(self.model_dir),
            "threads": str(self._torch.get_num_threads()),
            "batching": "prefix-shared batches" if self.batching else "one generate per call",
            "output_layer": self.precision.describe() if self.precision else "float32 (the model's own generate)",
            "cpu": precision.cpu_description(),
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        if not self.batching:
            for request in requests:
                yield self.generate_naive(request)
            return
        groups = {prefix: g for g, prefix in enumerate(dict.fromkeys(r.prefix for r in requests))}
        rows = [self._row(r, groups[r.prefix]) for r in requests]
        for done in self._batcher.complete(rows):
            for index, generated in done.items():
                yield self._result(requests[index], rows[index], generated)

    def _row(self, request: GenerationRequest, group: int) -> Row:
        """The request's tokens; requests with the same prefix text form a group (their common tokens
        run once)."""
        ids = self.tokenizer(request.prompt, add_special_tokens=True).input_ids
        return Row(tuple(int(i) for i in ids), request.max_new_tokens, request.stop, group, request.complete)

    def _result(self, request: GenerationRequest, row: Row, generated: Generated) -> GenerationResult:
        text = cut_at_stop(answer_text(self.tokenizer, generated.tokens), request.stop)
        tokens = len(generated.tokens)
        return GenerationResult(
            request.key, text, len(row.ids), tokens, generated.latency_s, machine_s=generated.machine_s
        )

    def generate_naive(self, request: GenerationRequest) -> GenerationResult:
        """The reference: one `model.generate` with the full prompt, timed end to end."""
        torch = self._torch
        started = time.perf_counter()
        encoded = self.tokenizer(request.prompt, return_tensors="pt").to(self.device)
        prompt_len = int(encoded.input_ids.shape[1])
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                stop_strings=list(request.stop),
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=self._complete_criteria(request, prompt_len),
            )
        new_tokens = output[0, prompt_len:]
        text = answer_text(self.tokenizer, new_tokens.tolist())
        latency = time.perf_counter() - started
        return GenerationResult(
            request.key,
            cut_at_stop(text, request.stop),
            prompt_len,
            int(new_tokens.shape[0]),
            latency,
            machine_s=latency,  # alone on the machine: its wall time is its machine time
        )

    def _complete_criteria(self, request: GenerationRequest, prompt_len: int) -> Any:
        """`request.complete` as a stopping criterion of `generate`, on the same decoded text the
        batched path checks."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        if request.complete is None:
            return StoppingCriteriaList([])
        complete, tokenizer, torch = request.complete, self.tokenizer, self._torch

        class Complete(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = [complete(answer_text(tokenizer, row[prompt_len:].tolist())) for row in input_ids]
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([Complete()])

    def close(self) -> None:
        del self.model
