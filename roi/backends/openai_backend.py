"""Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's server) through the official
async client: up to `max_concurrency` calls in flight, retries with backoff that we count ourselves, and
results handed to the runner one by one as they finish.

Timing: `latency_s` is the time spent in HTTP attempts (failed ones included, as a user waits for them);
the sleeps between attempts are reported apart in `backoff_s`, and time queued for a free slot is in
neither. The API key is read from the environment variable the pilot names and is kept out of every
string this module returns (roi/redaction.py).

Retry policy. Transient failures (429, 408, 409, 5xx, timeouts, dropped or refused connections) are
retried with backoff up to `max_retries`; a server's Retry-After is honoured up to `max_retry_after_s`.
A failure that retrying cannot fix for this call (another 4xx, a reply without text) is recorded at
once. A failure that no call to this model can get past (a malformed URL or unsupported protocol, an
unknown host, a certificate that does not verify, 401, 403, 404, "model not found") stops the model:
the calls not yet answered are recorded as not sent, with that one message, and no more are sent.

Deadlines. `timeout_s` bounds each attempt as a whole (connect, send and the whole reply): a server
dripping bytes or headers cannot stretch it. A run deadline (`stop_at`) ends the wait for the calls
still in flight; they are not recorded, so a resume sends them.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import os
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roi.backends import ContinuationQuery, ContinuationScores, GenerationRequest, GenerationResult, Status
from roi.backends.openai_logprobs import LogprobReader, LogprobReply, LogprobRequest, TokenLogprobs
from roi.backends.text import cut_at_stop
from roi.endpoints import effective_base_url, key_transport_problem, url_problem
from roi.errors import RoiError
from roi.pilot import ModelSpec
from roi.redaction import clip, remember, safe_url

# Local servers (llama.cpp, vLLM, Ollama) ignore the key, but the client refuses to start without one.
NO_KEY = "no-key"
MAX_STOP_STRINGS = 4  # OpenAI's limit; further stop strings are applied to the text here
MAX_ERROR_CHARS = 300
RETRYABLE_STATUS = {408, 409, 429}
MODEL_FATAL_STATUS = {401, 403, 404}
# Connection failures whose cause no retry changes (class names: the openai client's HTTP library
# has changed name between versions).
PERMANENT_CAUSES = {"UnsupportedProtocol", "InvalidURL", "SSLCertVerificationError"}


class Verdict(enum.Enum):
    RETRY = "retry"  # transient: try again after a wait
    FAIL_CALL = "fail_call"  # this call cannot succeed: record it now
    STOP_MODEL = "stop_model"  # no call to this model can succeed: stop sending


class AttemptTimeout(Exception):
    """An attempt got no complete reply within the model's `timeout_s`."""


class NotSent(Exception):
    """A call never sent because an earlier one showed that none can succeed."""


@dataclass
class Attempts:
    """What one call's retries cost: attempts made and time spent in them and between them."""

    retries: int = 0
    attempt_s: float = 0.0
    backoff_s: float = 0.0


class OpenAIBackend:
    # Class attributes so tests can shorten the waits; Retry-After from a server wins (up to the cap).
    backoff_base_s = 0.5
    backoff_max_s = 30.0

    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status) -> None:
        self.spec = spec
        self.base_url = checked_base_url(spec)
        self._key = read_api_key(spec)
        if self._key is not None and (problem := key_transport_problem(self.base_url)):
            raise RoiError(f"model '{spec.name}': {problem}")
        self._status = status
        self._stopped: str | None = None  # why no more calls are sent to this model
        self._deadline: float | None = None  # time.monotonic() at which waiting ends
        self._logprob_reader = LogprobReader(self.logprobs, continuable=spec.endpoint == "completions")
        status(f"Using {spec.name}: {spec.endpoint} endpoint at {safe_url(self.base_url)}")

    # ------------------------------------------------------------ Backend protocol

    def count_tokens(self, text: str) -> int | None:
        return None  # the served model's tokenizer is not at hand; usage from the API counts

    def describe(self) -> dict[str, str]:
        import openai

        return {
            "openai": openai.__version__,
            "base_url": safe_url(self.base_url),
            "endpoint": self.spec.endpoint,
            "model": self.spec.model,
            "max_concurrency": str(self.spec.max_concurrency),
            "timeout_s": str(self.spec.timeout_s),
            "max_retries": str(self.spec.max_retries),
            "max_retry_after_s": str(self.spec.max_retry_after_s),
        }

    def score_continuations(self, query: ContinuationQuery) -> ContinuationScores:
        """From the server's logprobs: echo (exact) or the top-logprob beam (an estimate), per
        roi/backends/openai_logprobs.py; `CannotScore` when the server gives neither."""
        return self._logprob_reader.score(query)

    def close(self) -> None:
        pass

    def stop_at(self, deadline: float | None) -> None:
        """Stop waiting at `deadline` (a `time.monotonic()` value): calls in flight then are dropped."""
        self._deadline = deadline

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        """Step an event loop in this thread until some call finishes, yield it, repeat: the runner stores
        each result before the next wait, and no thread touches the store."""
        return self._as_finished(requests, self._one, self._not_sent)

    def logprobs(self, requests: Sequence[LogprobRequest]) -> Iterator[LogprobReply]:
        """One-token completions read for their logprobs (the probe's), with the same retries,
        concurrency and timing as `generate`; yielded as they finish."""
        return self._as_finished(requests, self._one_logprobs, self._logprobs_not_sent)

    def _as_finished(self, requests: Sequence[Any], call: Any, not_sent: Callable[[Any], Any]) -> Iterator[Any]:
        loop = asyncio.new_event_loop()
        client = self._client()
        slots = asyncio.Semaphore(self.spec.max_concurrency)
        pending = {loop.create_task(call(client, slots, r)): r for r in requests}
        try:
            while pending and self._stopped is None:
                timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
                done, _ = loop.run_until_complete(
                    asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                )
                if not done:
                    return  # the run's deadline: what is still in flight is not recorded
                for task in done:
                    pending.pop(task)
                    yield task.result()
            finished = [t for t in pending if t.done() and not t.cancelled()]
            for task in finished:
                yield task.result()
                pending.pop(task)
            for request in sorted(pending.values(), key=lambda r: str(r.key)):
                yield not_sent(request)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            loop.run_until_complete(client.close())
            loop.close()

    # ------------------------------------------------------------ one call

    def _client(self) -> Any:
        from openai import AsyncOpenAI

        # max_retries=0: we retry ourselves, to count retries and keep backoff out of latency. The
        # client's timeout bounds each read; `_attempt` bounds the attempt as a whole.
        return AsyncOpenAI(
            api_key=self._key or NO_KEY, base_url=self.base_url, max_retries=0, timeout=self.spec.timeout_s
        )

    async def _one(self, client: Any, slots: asyncio.Semaphore, request: GenerationRequest) -> GenerationResult:
        response, err, tries = await self._with_retries(slots, lambda: self._send(client, request))
        if err is not None:
            return self._failed(request, err, tries)
        try:
            return self._result(request, response, tries)
        except Exception as bad:  # a reply without choices or text: recorded, not retried
            return self._failed(request, bad, tries)

    async def _with_retries(
        self, slots: asyncio.Semaphore, send: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, Exception | None, Attempts]:
        """(response, None, attempts) once a call succeeds; (None, final error, attempts) otherwise."""
        async with slots:
            tries = Attempts()
            while True:
                if self._stopped is not None:
                    return None, NotSent(self._stopped), tries
                started = time.perf_counter()
                try:
                    response = await self._attempt(send)
                except Exception as err:  # every failure becomes a retry or a recorded error, never a crash
                    tries.attempt_s += time.perf_counter() - started
                    wait = self._after_failure(err, tries.retries)
                    if wait is None:
                        return None, err, tries
                    tries.retries += 1
                    tries.backoff_s += wait
                    await asyncio.sleep(wait)
                    continue
                tries.attempt_s += time.perf_counter() - started
                return response, None, tries

    async def _attempt(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """One attempt, bounded as a whole: connect, send and the whole reply within `timeout_s`."""
        try:
            async with asyncio.timeout(self.spec.timeout_s):
                return await send()
        except TimeoutError:
            raise AttemptTimeout(f"no complete reply within timeout_s = {self.spec.timeout_s:g} s") from None

    def _after_failure(self, err: Exception, retries_so_far: int) -> float | None:
        """Seconds to wait before the next attempt, or None when the error is final (for this call, or,
        after a permanent error, for the model)."""
        kind = verdict(err)
        if kind is Verdict.STOP_MODEL and self._stopped is None:
            self._stopped = f"stopped after a permanent error: {describe_error(err, self._key)}"
            self._status(f"model '{self.spec.name}' {self._stopped}; its other calls are not sent")
        if kind is not Verdict.RETRY or retries_so_far >= self.spec.max_retries:
            return None
        after = retry_after_s(err)
        if after is not None:
            return min(after, self.spec.max_retry_after_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0**retries_so_far)
        return ceiling * random.uniform(0.5, 1.0)  # jitter keeps concurrent callers from retrying in step

    async def _send(self, client: Any, request: GenerationRequest) -> Any:
        body = request_body(self.spec, request)
        if self.spec.endpoint == "completions":
            return await client.completions.create(**body)
        return await client.chat.completions.create(**body)

    async def _one_logprobs(self, client: Any, slots: asyncio.Semaphore, request: LogprobRequest) -> LogprobReply:
        response, err, tries = await self._with_retries(slots, lambda: self._send_logprobs(client, request))
        if err is None:
            try:
                usage = response.usage
                return LogprobReply(
                    request.key, read_logprobs(response.choices[0]),
                    usage.prompt_tokens if usage else None, tries.attempt_s, tries.retries, tries.backoff_s,
                )  # fmt: skip
            except Exception as bad:  # a reply without choices: recorded, not retried
                err = bad
        error = describe_error(err, self._key)
        return LogprobReply(request.key, None, None, tries.attempt_s, tries.retries, tries.backoff_s, error)

    def _logprobs_not_sent(self, request: LogprobRequest) -> LogprobReply:
        return LogprobReply(request.key, None, None, 0.0, error=describe_error(NotSent(self._stopped or ""), None))

    async def _send_logprobs(self, client: Any, request: LogprobRequest) -> Any:
        # max_tokens=1, not 0: llama-cpp-python (and some other servers) read 0 as "no limit".
        common: dict[str, Any] = {"model": self.spec.model, "max_tokens": 1, "temperature": 0.0}
        if self.spec.endpoint == "completions":
            return await client.completions.create(
                prompt=request.prompt, echo=request.echo, logprobs=request.top_logprobs, **common
            )
        return await client.chat.completions.create(
            messages=[{"role": "user", "content": request.prompt}], logprobs=True,
            top_logprobs=request.top_logprobs, **common,
        )  # fmt: skip

    def _result(self, request: GenerationRequest, response: Any, tries: Attempts) -> GenerationResult:
        return reply_result(self.spec, request, response, tries)

    def _failed(self, request: GenerationRequest, err: Exception, tries: Attempts) -> GenerationResult:
        return GenerationResult(
            key=request.key,
            text=None,
            prompt_tokens=None,
            output_tokens=None,
            latency_s=tries.attempt_s,
            error=describe_error(err, self._key),
            retries=tries.retries,
            backoff_s=tries.backoff_s,
        )

    def _not_sent(self, request: GenerationRequest) -> GenerationResult:
        return self._failed(request, NotSent(self._stopped or ""), Attempts())


# ---------------------------------------------------------------- requests and replies (shared with batch jobs)


def endpoint_path(spec: ModelSpec) -> str:
    return "/v1/completions" if spec.endpoint == "completions" else "/v1/chat/completions"


def request_body(spec: ModelSpec, request: GenerationRequest) -> dict[str, Any]:
    """The JSON body of one greedy call on the model's endpoint."""
    body: dict[str, Any] = {
        "model": spec.model,
        "max_tokens": request.max_new_tokens,
        "temperature": 0.0,
        "stop": list(request.stop[:MAX_STOP_STRINGS]) or None,
    }
    if spec.endpoint == "completions":
        return {**body, "prompt": request.prompt}
    # The whole few-shot prompt goes as one user turn: no system turn, as Gemma's template has none
    # (llama.cpp's `gemma` format drops it), and no assistant prefill, which most APIs refuse.
    return {**body, "messages": [{"role": "user", "content": request.prompt}]}


def reply_result(spec: ModelSpec, request: GenerationRequest, response: Any, tries: Attempts) -> GenerationResult:
    """A successful reply (read by attribute, as the client's objects are) as a result."""
    choice = response.choices[0]
    if spec.endpoint == "completions":
        text = choice.text or ""
    else:
        text = as_continuation(choice.message.content or "", request.prompt)
    usage = response.usage
    return GenerationResult(
        key=request.key,
        text=cut_at_stop(text, request.stop),
        prompt_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else None,
        latency_s=tries.attempt_s,
        cached_prompt_tokens=cached_tokens(usage),
        retries=tries.retries,
        backoff_s=tries.backoff_s,
    )


# ---------------------------------------------------------------- helpers


def read_api_key(spec: ModelSpec) -> str | None:
    """The key from the variable the pilot names; from now on it is masked wherever roi writes text."""
    if spec.api_key_env is None:
        return None
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise RoiError(f"model '{spec.name}': the environment variable {spec.api_key_env} (api_key_env) is not set")
    remember(key)
    return key


def checked_base_url(spec: ModelSpec) -> str:
    """The endpoint the model's calls go to, refused (exit 2) when it is not an http(s) URL."""
    url = effective_base_url(spec.base_url)
    problem = url_problem(url)
    if problem is not None:
        source = "base_url" if spec.base_url else "OPENAI_BASE_URL"
        raise RoiError(f"model '{spec.name}': {source} {safe_url(url)!r} is {problem}")
    return url


def verdict(err: Exception) -> Verdict:
    """What a failed attempt means: retry it, record the call as failed, or stop the model."""
    import openai

    if isinstance(err, AttemptTimeout):
        return Verdict.RETRY
    if isinstance(err, openai.APIConnectionError):  # includes the client's own timeouts
        return Verdict.STOP_MODEL if permanent_cause(err) else Verdict.RETRY
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        if status in MODEL_FATAL_STATUS or model_not_found(err):
            return Verdict.STOP_MODEL
        return Verdict.RETRY if status in RETRYABLE_STATUS or status >= 500 else Verdict.FAIL_CALL
    return Verdict.FAIL_CALL


def permanent_cause(err: BaseException) -> bool:
    """A connection error caused by a bad URL, an unknown host or a certificate that does not verify."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return cause.errno != socket.EAI_AGAIN  # "temporary failure in name resolution" is worth a retry
        if isinstance(cause, ssl.SSLCertVerificationError) or type(cause).__name__ in PERMANENT_CAUSES:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def model_not_found(err: Any) -> bool:
    return getattr(err, "code", None) == "model_not_found"  # OpenAI's code, sent with 400 or 404


def retry_after_s(err: Exception) -> float | None:
    """The server's Retry-After (seconds, milliseconds or an HTTP date), if it sent one."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value: str | None = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def describe_error(err: Exception, key: str | None) -> str:
    """A one-line error for the store: the kind, the HTTP status and the start of the server's message,
    with credentials masked in the whole message before it is cut."""
    status = getattr(err, "status_code", None)
    head = type(err).__name__ + (f" (HTTP {status})" if status is not None else "")
    message = str(getattr(err, "message", err))
    return clip(f"{head}: {message}" if message.strip() else head, MAX_ERROR_CHARS, key)


def cached_tokens(usage: Any) -> int | None:
    details = getattr(usage, "prompt_tokens_details", None)
    value = getattr(details, "cached_tokens", None)
    return int(value) if value is not None else None


def as_continuation(reply: str, prompt: str) -> str:
    """A chat reply read as the continuation of a completion-style prompt: chat models often repeat the
    prompt's last line (`Output:` or `A[1] (task) input ->`) before the answer; drop that echo."""
    cue = prompt.rsplit("\n", 1)[-1].strip()
    body = reply.lstrip(" \t")
    if cue and body.startswith(cue):
        return body[len(cue) :]
    return " " + body if body and not body.startswith("\n") else body


def read_logprobs(choice: Any) -> TokenLogprobs | None:
    """A completion's or chat reply's logprobs in the completions shape; None when it has none.
    Offsets missing from a reply (chat never gives them) are rebuilt from the token texts."""
    raw = getattr(choice, "logprobs", None)
    if raw is None:
        return None
    content = getattr(raw, "content", None)
    if content is not None:  # chat: a list of {token, logprob, top_logprobs: [{token, logprob}]}
        tokens = [c.token for c in content]
        values: list[float | None] = [c.logprob for c in content]
        tops = [{t.token: t.logprob for t in c.top_logprobs or []} for c in content]
        offsets = None
    else:
        tokens = list(raw.tokens or [])
        values = list(raw.token_logprobs or [])
        tops = [dict(t or {}) for t in raw.top_logprobs or [{} for _ in tokens]]
        offsets = list(raw.text_offset) if getattr(raw, "text_offset", None) else None
    if not tokens or len(values) != len(tokens):
        return None
    if offsets is None or len(offsets) != len(tokens):
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return TokenLogprobs(tokens, offsets_in_text(offsets, tokens, getattr(choice, "text", None)), values, tops)


def offsets_in_text(offsets: list[int], tokens: list[str], text: str | None) -> list[int]:
    """Token offsets that index the returned text. vLLM counts offsets in a text that spells out the
    leading special tokens (`<bos>` is 5 characters) and returns the text without them; shift such
    offsets back so the first real token starts at 0 (the special ones then span nothing). Only then:
    the tokens before the shift must spell exactly that many characters, and the text must not start
    with them (tokens whose lengths do not add up to the text, such as byte pieces shown as U+FFFD,
    leave the offsets as they are)."""
    if not isinstance(text, str):
        return offsets
    shift = offsets[-1] + len(tokens[-1]) - len(text)
    if shift <= 0 or shift not in offsets:
        return offsets
    leading = "".join(tokens[: offsets.index(shift)])
    if len(leading) != shift or text.startswith(leading):
        return offsets
    return [max(0, offset - shift) for offset in offsets]
