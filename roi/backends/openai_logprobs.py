"""Reading answer probabilities from an OpenAI-compatible server: what `OpenAIBackend.score_continuations`
does for the superposition probe.

Two ways to read `P(answer | prompt)`, chosen by the query's `api_method` (docs/probe.md, "API models"):

- `echo`: one `/v1/completions` call per candidate with `echo=True`, `logprobs=1`, `max_tokens=1` on
  `prompt + candidate`. The server returns the logprob of every prompt token; the candidate's tokens
  are those whose text ends after the prompt's end (so a token merging across the seam is scored, as
  local teacher forcing does) and starts before the text's end (the generated token is not).
  Teacher forcing, exact up to the served weights (a quantised GGUF is not the float32 model).
- `top_logprobs`, for servers that do not echo (chat-only servers, OpenAI's current models): the
  paper's bounded beam. Each candidate is walked through the top-N lists of one-token calls on
  `prompt + the part matched so far`; when its next piece is not listed, its probability is only
  bounded above (by the least listed alternative), and the candidate is marked `upper_bound`. Chat
  replies cannot be continued portably, so on `endpoint: chat` only the reply's first token is read.
  These figures are estimates and are labelled so wherever they show.

`auto` tries echo on the first call and falls back to top logprobs; a server that gives no logprobs
at all cannot score (`CannotScore`). The calls are the backend's (`OpenAIBackend.logprobs`), with the
generation path's retries, concurrency and key handling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from roi.backends import (
    ECHO,
    TOP_LOGPROBS,
    CandidateScore,
    CannotScore,
    ContinuationQuery,
    ContinuationScores,
    ScoringFailed,
)

WALK_WIDTH = 2  # tokenisations followed per candidate: the canonical one and a runner-up


@dataclass(frozen=True)
class LogprobRequest:
    """A one-token completion read for its logprobs rather than its text."""

    key: str
    prompt: str
    echo: bool  # completions only: also return the logprobs of the prompt's own tokens
    top_logprobs: int  # alternatives listed per position (0: only the chosen or echoed token)


@dataclass(frozen=True)
class TokenLogprobs:
    """Per position, as the completions API gives them (chat replies are converted to this shape)."""

    tokens: list[str]
    text_offsets: list[int]  # character offset of each token in the prompt (echo) or the reply
    token_logprobs: list[float | None]  # None where the server gives none (the first echoed token)
    top_logprobs: list[dict[str, float]]


@dataclass(frozen=True)
class LogprobReply:
    key: str
    logprobs: TokenLogprobs | None  # None: the server answered without logprobs
    prompt_tokens: int | None
    latency_s: float
    retries: int = 0
    backoff_s: float = 0.0
    error: str | None = None  # the call failed after its retries


LogprobCalls = Callable[[Sequence[LogprobRequest]], Iterator[LogprobReply]]


class NoLogprobs(CannotScore):
    """The server answers without the logprobs a method needs."""


# ---------------------------------------------------------------- echo


def echo_span(lp: TokenLogprobs, prompt_chars: int, text_chars: int) -> list[int]:
    """Positions of the candidate's tokens in an echoed `prompt + candidate` (+ one generated token)."""
    starts = lp.text_offsets
    ends = [*starts[1:], starts[-1] + len(lp.tokens[-1])]
    return [i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if e > prompt_chars and s < text_chars]


def echo_score(lp: TokenLogprobs, prompt: str, cand: str) -> CandidateScore | None:
    """The candidate's teacher-forced logprob from an echo reply; None when the reply did not echo."""
    picked = echo_span(lp, len(prompt), len(prompt + cand))
    values = [lp.token_logprobs[i] for i in picked]
    if not picked or lp.text_offsets[0] != 0 or any(v is None for v in values):
        return None  # the server ignored echo, or gave no logprob where one is needed
    return CandidateScore(sum(v for v in values if v is not None), len(picked))


def score_by_echo(calls: LogprobCalls, prompt: str, candidates: Sequence[str]) -> tuple[list[CandidateScore], int]:
    """(one score per candidate, the prompt's tokens by the server's count): K calls, run concurrently."""
    requests = [LogprobRequest(str(i), prompt + c, echo=True, top_logprobs=1) for i, c in enumerate(candidates)]
    scores: dict[int, CandidateScore] = {}
    prompt_tokens = 0
    for reply in calls(requests):
        if reply.error is not None:
            raise ScoringFailed(reply.error)
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
    nodes) and capped at `cap` calls; past the cap a list reads as None. `continuable`: the endpoint
    continues a text (completions), rather than answering it afresh (chat)."""

    def __init__(self, calls: LogprobCalls, continuable: bool, top_n: int, cap: int) -> None:
        self.calls_made = 0
        self.prompt_tokens = 0
        self.continuable = continuable
        self._calls, self._top_n, self._cap = calls, top_n, cap
        self._memo: dict[str, dict[str, float]] = {}

    def get(self, texts: Sequence[str]) -> list[dict[str, float] | None]:
        new = [t for t in dict.fromkeys(texts) if t not in self._memo][: max(0, self._cap - self.calls_made)]
        self.calls_made += len(new)
        requests = [LogprobRequest(str(i), t, echo=False, top_logprobs=self._top_n) for i, t in enumerate(new)]
        for reply in self._calls(requests) if requests else ():
            if reply.error is not None:
                raise ScoringFailed(reply.error)
            lp = reply.logprobs
            if lp is None or not lp.top_logprobs[0]:
                raise NoLogprobs("the server returns no top logprobs")
            chosen = {lp.tokens[0]: lp.token_logprobs[0]} if lp.token_logprobs[0] is not None else {}
            self._memo[new[int(reply.key)]] = {**lp.top_logprobs[0], **chosen}
            self.prompt_tokens = self.prompt_tokens or (reply.prompt_tokens or 0)
        return [self._memo.get(t) for t in texts]


def walk(lists: TopLists, prompt: str, cand: str) -> CandidateScore:
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
        return CandidateScore(lp, n)
    lp, n = max(bounds)
    return CandidateScore(lp, n, upper_bound=True)


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


# ---------------------------------------------------------------- one server


class LogprobReader:
    """One model's scoring by its server's logprobs; the method is chosen on the first query and kept."""

    def __init__(self, calls: LogprobCalls, continuable: bool) -> None:
        self._calls, self._continuable = calls, continuable
        self.method: str | None = None

    def score(self, query: ContinuationQuery) -> ContinuationScores:
        try:
            method = self.method or self._choose(query)
            self.method = method
            return self._score(query, method)
        except NoLogprobs as err:
            raise NoLogprobs(f"{err} (api_method: {query.api_method})") from None

    def _choose(self, query: ContinuationQuery) -> str:
        """`auto`: echo when one echo call on the first query gives the candidate's logprobs, else top
        logprobs when a one-token call lists them; NoLogprobs when neither does."""
        if query.api_method != "auto":
            return query.api_method
        if self._continuable:
            try:
                score_by_echo(self._calls, query.prompt, query.candidates[:1])
                return ECHO
            except (NoLogprobs, ScoringFailed):  # e.g. HTTP 400 "echo is not supported": try the other way
                pass
        TopLists(self._calls, self._continuable, query.top_logprobs, 1).get([query.prompt])
        return TOP_LOGPROBS

    def _score(self, query: ContinuationQuery, method: str) -> ContinuationScores:
        lists = TopLists(self._calls, self._continuable, query.top_logprobs, query.max_calls)
        echoed_tokens = 0
        if method == ECHO:
            scores, echoed_tokens = score_by_echo(self._calls, query.prompt, query.candidates)
        else:
            scores = [walk(lists, query.prompt, c) for c in query.candidates]
        top = top_continuations(lists, query.prompt, max(query.top_k, 1), max(s.tokens for s in scores) + 1)
        prompt_tokens = echoed_tokens if method == ECHO else lists.prompt_tokens
        return ContinuationScores(method, prompt_tokens, scores, top)


def planned_calls(tasks: int, api_method: str, max_calls: int, prompts: int, continuable: bool) -> tuple[int, int]:
    """(calls at least, calls at most) for `prompts` queries of `tasks` candidates each: echo needs one
    call per candidate, the top-logprob beam and the top-K check at most `max_calls` more per query."""
    echo = tasks if continuable and api_method != TOP_LOGPROBS else 0
    trial = 2 if api_method == "auto" else 0  # auto's first echo call and first top-list call
    return prompts * max(echo, 1), prompts * (echo + max_calls) + trial
