"""Issue 5: the superposition probe on API models (`backend: openai`), from the logprobs a server gives.

Two ways to read `P(answer | prompt)`, chosen by the probe's `api_method` (docs/probe.md, "API models"):

- `echo`: one `/v1/completions` call per candidate with `echo=True`, `logprobs=1`, `max_tokens=1` on
  `prompt + candidate`. The server returns the logprob of every prompt token; the candidate's tokens
  are those whose text ends after the prompt's end (so a token merging across the seam is scored, as
  `teacher_forcing.joint_split` does locally) and starts before the text's end (the generated token is not).
  Teacher forcing, exact up to the served weights (a quantised GGUF is not the float32 model).
- `top_logprobs`, for servers that do not echo (chat-only servers, OpenAI's current models): the
  paper's bounded beam. Each candidate is walked through the top-N lists of one-token calls on
  `prompt + the part matched so far`; when its next piece is not listed, its probability is only
  bounded above (by the least listed alternative), and the row is marked `upper_bound`. Chat
  replies cannot be continued portably, so on `endpoint: chat` only the reply's first token is read.
  These figures are estimates and are labelled so in the table, the report and summary.json.

`auto` tries echo on the first call and falls back to top logprobs; a server that gives no logprobs
at all skips the probe for that model with a note. Calls go through `OpenAIBackend.logprobs`, with the
generation path's retries, concurrency and key handling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from roi import store
from roi.backends.openai_backend import LogprobRequest, OpenAIBackend, TokenLogprobs
from roi.pilot import ProbeSpec
from roi.probe import ProbePrompt, ProbeRow, candidate

ECHO = "echo"
TOP_LOGPROBS = "top_logprobs"
WALK_WIDTH = 2  # tokenisations followed per candidate: the canonical one and a runner-up


class NoLogprobs(Exception):
    """The server answers without the logprobs a method needs."""


class CallFailed(Exception):
    """A probe call failed after its retries (the message is the redacted error)."""


@dataclass(frozen=True)
class ApiScore:
    logprob: float  # natural log of P(candidate | prompt), or of an upper bound on it
    tokens: int  # tokens scored (the server's tokenizer)
    upper_bound: bool = False  # top-logprob walk: the candidate left the listed alternatives


# ---------------------------------------------------------------- echo


def echo_span(lp: TokenLogprobs, prompt_chars: int, text_chars: int) -> list[int]:
    """Positions of the candidate's tokens in an echoed `prompt + candidate` (+ one generated token)."""
    starts = lp.text_offsets
    ends = [*starts[1:], starts[-1] + len(lp.tokens[-1])]
    return [i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if e > prompt_chars and s < text_chars]


def echo_score(lp: TokenLogprobs, prompt: str, cand: str) -> ApiScore | None:
    """The candidate's teacher-forced logprob from an echo reply; None when the reply did not echo."""
    picked = echo_span(lp, len(prompt), len(prompt + cand))
    values = [lp.token_logprobs[i] for i in picked]
    if not picked or lp.text_offsets[0] != 0 or any(v is None for v in values):
        return None  # the server ignored echo, or gave no logprob where one is needed
    return ApiScore(sum(v for v in values if v is not None), len(picked))


def score_by_echo(backend: OpenAIBackend, prompt: str, candidates: Sequence[str]) -> tuple[list[ApiScore], int]:
    """(one score per candidate, the prompt's tokens by the server's count): K calls, run concurrently."""
    requests = [LogprobRequest(str(i), prompt + c, echo=True, top_logprobs=1) for i, c in enumerate(candidates)]
    scores: dict[int, ApiScore] = {}
    prompt_tokens = 0
    for reply in backend.logprobs(requests):
        if reply.error is not None:
            raise CallFailed(reply.error)
        i = int(reply.key)
        score = echo_score(reply.logprobs, prompt, candidates[i]) if reply.logprobs else None
        if score is None:
            raise NoLogprobs("the server does not return the prompt's logprobs with echo")
        scores[i] = score
        prompt_tokens = max(prompt_tokens, (reply.prompt_tokens or 0) - score.tokens)
    return [scores[i] for i in range(len(candidates))], prompt_tokens


# ---------------------------------------------------------------- top logprobs: the bounded beam


class TopLists:
    """One prompt's one-token top-logprob calls: memoised by text (the walks and the top-K check share
    nodes) and capped at `cap` calls; past the cap a list reads as None."""

    def __init__(self, backend: OpenAIBackend, top_n: int, cap: int) -> None:
        self.backend = backend
        self.top_n = top_n
        self.cap = cap
        self.calls = 0
        self.prompt_tokens = 0
        self.continuable = backend.spec.endpoint == "completions"
        self._memo: dict[str, dict[str, float]] = {}

    def get(self, texts: Sequence[str]) -> list[dict[str, float] | None]:
        new = [t for t in dict.fromkeys(texts) if t not in self._memo][: max(0, self.cap - self.calls)]
        self.calls += len(new)
        requests = [LogprobRequest(str(i), t, echo=False, top_logprobs=self.top_n) for i, t in enumerate(new)]
        for reply in self.backend.logprobs(requests) if requests else ():
            if reply.error is not None:
                raise CallFailed(reply.error)
            lp = reply.logprobs
            if lp is None or not lp.top_logprobs[0]:
                raise NoLogprobs("the server returns no top logprobs")
            chosen = {lp.tokens[0]: lp.token_logprobs[0]} if lp.token_logprobs[0] is not None else {}
            self._memo[new[int(reply.key)]] = {**lp.top_logprobs[0], **chosen}
            self.prompt_tokens = self.prompt_tokens or (reply.prompt_tokens or 0)
        return [self._memo.get(t) for t in texts]


def walk(lists: TopLists, prompt: str, cand: str) -> ApiScore:
    """The candidate's logprob along the listed tokens, best of the `WALK_WIDTH` likeliest
    tokenisations; an upper bound when no tokenisation reaches its end within the lists and the cap."""
    target = cand if lists.continuable else cand.lstrip()  # a chat reply starts afresh, without the space
    paths: list[tuple[str, float, int]] = [("", 0.0, 0)]  # matched text, logprob, tokens
    complete: list[tuple[float, int]] = []
    bounds: list[tuple[float, int]] = []
    while paths:
        grown = []
        for (matched, lp, n), top in zip(paths, lists.get([prompt + m for m, _, _ in paths]), strict=True):
            if top is None:  # over the cap: the rest has probability at most 1
                bounds.append((lp, n))
                continue
            rest = target[len(matched) :]
            pieces = [(t, v) for t, v in top.items() if t and rest.startswith(t)]
            if not pieces:  # the next piece is less likely than anything listed
                bounds.append((lp + min(top.values()), n + 1))
            for piece, value in pieces:
                if piece == rest:
                    complete.append((lp + value, n + 1))
                elif lists.continuable:
                    grown.append((matched + piece, lp + value, n + 1))
                else:  # chat: P(answer) is at most P(its first piece)
                    bounds.append((lp + value, n + 1))
        paths = sorted(grown, key=lambda p: -p[1])[:WALK_WIDTH]
    if complete:
        lp, n = max(complete)  # one tokenisation, as teacher forcing scores one
        return ApiScore(lp, n)
    lp, n = max(bounds)
    return ApiScore(lp, n, upper_bound=True)


def top_continuations(lists: TopLists, prompt: str, width: int, max_steps: int) -> list[str]:
    """The model's `width` best distinct continuations (ended at a newline, stripped), ranked by total
    probability (no length penalty), by a beam search over the top lists keeping twice `width`
    continuations per step (the server lists only its top tokens, so an exact search as the local
    `top_answers` runs is not possible); stops early at the cap, keeping what it has."""
    beams: list[tuple[str, float]] = [("", 0.0)]
    ended: dict[str, float] = {}
    for _ in range(max_steps if lists.continuable else 1):
        grown = []
        for (text, lp), top in zip(beams, lists.get([prompt + b for b, _ in beams]), strict=True):
            if top is None:
                _end(ended, text, lp)
                continue
            for token, value in top.items():
                if "\n" in token or not token:  # a newline or end of text ends the answer
                    _end(ended, (text + token).split("\n", 1)[0], lp + value)
                else:
                    grown.append((text + token, lp + value))
        beams = sorted(grown, key=lambda b: -b[1])[: 2 * width]  # twice: beams may end as one answer
    for text, lp in beams:
        _end(ended, text, lp)
    return sorted(ended, key=lambda a: -ended[a])[:width]


def _end(ended: dict[str, float], text: str, lp: float) -> None:
    answer = text.strip()
    if answer:
        ended[answer] = max(lp, ended.get(answer, -math.inf))  # duplicates after strip count once


# ---------------------------------------------------------------- one prompt, one model


def probe_prompt(
    model_name: str, backend: OpenAIBackend, prompt: ProbePrompt, spec: ProbeSpec, method: str
) -> list[ProbeRow]:
    tasks = list(prompt.answers)
    cands = [candidate(prompt.answers[t]) for t in tasks]
    lists = TopLists(backend, spec.top_logprobs, spec.max_calls_per_prompt)
    echoed_tokens = 0
    if method == ECHO:
        scores, echoed_tokens = score_by_echo(backend, prompt.text, cands)
    else:
        scores = [walk(lists, prompt.text, c) for c in cands]
    width = spec.beam_width or sum(1 for s in prompt.shares.values() if s > 0)
    beams = set(top_continuations(lists, prompt.text, max(width, 1), max(s.tokens for s in scores) + 1))
    prompt_tokens = echoed_tokens if method == ECHO else lists.prompt_tokens
    return [
        ProbeRow(
            model_name, prompt.mixture, prompt.index, t, prompt.shares[t], prompt.query, prompt.answers[t],
            s.logprob, math.exp(s.logprob), s.tokens, prompt.answers[t].strip() in beams, prompt_tokens,
            method, s.upper_bound,
        )
        for t, s in zip(tasks, scores, strict=True)
    ]  # fmt: skip


def choose_method(backend: OpenAIBackend, prompt: ProbePrompt, spec: ProbeSpec) -> str:
    """`auto`: echo when one echo call on the first prompt gives the candidate's logprobs, else top
    logprobs when a one-token call lists them; NoLogprobs when neither does."""
    if spec.api_method != "auto":
        return spec.api_method
    if backend.spec.endpoint == "completions":
        try:
            score_by_echo(backend, prompt.text, [candidate(next(iter(prompt.answers.values())))])
            return ECHO
        except (NoLogprobs, CallFailed):  # e.g. HTTP 400 "echo is not supported": try the other way
            pass
    TopLists(backend, spec.top_logprobs, 1).get([prompt.text])
    return TOP_LOGPROBS


def probe_model(
    db: Any, run_id: str, name: str, backend: OpenAIBackend, todo: list[ProbePrompt], spec: ProbeSpec, status: Any
) -> str:
    """Probe `todo` on one API model, storing each prompt's rows; returns the model's note."""
    done = 0
    try:
        method = choose_method(backend, todo[0], spec)
        label = "echo logprobs" if method == ECHO else f"top-{spec.top_logprobs} logprob beam (estimates)"
        status(f"Probing {name} by {label}: {len(todo)} prompts")
        for prompt in todo:
            store.record_probe(db, run_id, probe_prompt(name, backend, prompt, spec, method))
            done += 1
    except NoLogprobs as err:
        return f"probe skipped: {err} (api_method: {spec.api_method})"
    except CallFailed as err:
        return f"probe stopped after {done} of {len(todo)} prompts: {err}"
    return f"probed {len(todo)} prompts by {label}"


def planned_calls(spec: ProbeSpec, prompts: int, endpoint: str) -> tuple[int, int]:
    """(calls at least, calls at most) for `prompts` prompts: echo needs one call per candidate, the
    top-logprob beam and the top-K check at most `max_calls_per_prompt` more per prompt."""
    echo = len(spec.tasks) if endpoint == "completions" and spec.api_method != TOP_LOGPROBS else 0
    trial = 2 if spec.api_method == "auto" else 0  # auto's first echo call and first top-list call
    return prompts * max(echo, 1), prompts * (echo + spec.max_calls_per_prompt) + trial
