"""Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's server) through the official
async client: up to `max_concurrency` calls in flight, retries with backoff that we count ourselves, and
results handed to the runner one by one as they finish.

Timing: `latency_s` is the time spent in HTTP attempts (failed ones included, as a user waits for them);
the sleeps between attempts are reported apart in `backoff_s`, and time queued for a free slot is in
neither. The API key is read from the environment variable the pilot names and is kept out of every
string this module returns.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roi.backends import GenerationRequest, GenerationResult, Status
from roi.backends.local.transformers_backend import cut_at_stop
from roi.errors import RoiError
from roi.pilot import ModelSpec

# Local servers (llama.cpp, vLLM, Ollama) ignore the key, but the client refuses to start without one.
NO_KEY = "no-key"
MAX_STOP_STRINGS = 4  # OpenAI's limit; further stop strings are applied to the text here
MAX_RETRY_AFTER_S = 600.0
RETRYABLE_STATUS = {408, 409, 429}


@dataclass
class Attempts:
    """What one call's retries cost: attempts made and time spent in them and between them."""

    retries: int = 0
    attempt_s: float = 0.0
    backoff_s: float = 0.0


@dataclass(frozen=True)
class LogprobRequest:
    """Issue 5 (the probe): a one-token completion read for its logprobs rather than its text."""

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


class OpenAIBackend:
    # Class attributes so tests can shorten the waits; Retry-After from a server always wins.
    backoff_base_s = 0.5
    backoff_max_s = 30.0

    def __init__(self, spec: ModelSpec, base_dir: Path, status: Status) -> None:
        self.spec = spec
        self._key = read_api_key(spec)
        status(f"Using {spec.name}: {spec.endpoint} endpoint at {safe_url(spec.base_url)}")

    # ------------------------------------------------------------ Backend protocol

    def count_tokens(self, text: str) -> int | None:
        return None  # the served model's tokenizer is not at hand; usage from the API counts

    def describe(self) -> dict[str, str]:
        import openai

        return {
            "openai": openai.__version__,
            "base_url": safe_url(self.spec.base_url),
            "endpoint": self.spec.endpoint,
            "model": self.spec.model,
            "max_concurrency": str(self.spec.max_concurrency),
            "timeout_s": str(self.spec.timeout_s),
            "max_retries": str(self.spec.max_retries),
        }

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[GenerationResult]:
        """Step an event loop in this thread until some call finishes, yield it, repeat: the runner stores
        each result before the next wait, and no thread touches the store."""
        return self._as_finished(requests, self._one)

    def logprobs(self, requests: Sequence[LogprobRequest]) -> Iterator[LogprobReply]:
        """Issue 5 (the probe): one-token completions read for their logprobs, with the same retries,
        concurrency and timing as `generate`; yielded as they finish."""
        return self._as_finished(requests, self._one_logprobs)

    def _as_finished(self, requests: Sequence[Any], call: Any) -> Iterator[Any]:
        loop = asyncio.new_event_loop()
        client = self._client()
        slots = asyncio.Semaphore(self.spec.max_concurrency)
        pending = {loop.create_task(call(client, slots, r)) for r in requests}
        try:
            while pending:
                done, pending = loop.run_until_complete(asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED))
                for task in done:
                    yield task.result()
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

        # max_retries=0: we retry ourselves, to count retries and keep backoff out of latency.
        return AsyncOpenAI(
            api_key=self._key or NO_KEY, base_url=self.spec.base_url, max_retries=0, timeout=self.spec.timeout_s
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
                started = time.perf_counter()
                try:
                    response = await send()
                except Exception as err:  # every failure becomes a retry or a recorded error, never a crash
                    tries.attempt_s += time.perf_counter() - started
                    wait = self._retry_wait(err, tries.retries)
                    if wait is None:
                        return None, err, tries
                    tries.retries += 1
                    tries.backoff_s += wait
                    await asyncio.sleep(wait)
                    continue
                tries.attempt_s += time.perf_counter() - started
                return response, None, tries

    async def _send(self, client: Any, request: GenerationRequest) -> Any:
        common: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": request.max_new_tokens,
            "temperature": 0.0,
            "stop": list(request.stop[:MAX_STOP_STRINGS]) or None,
        }
        if self.spec.endpoint == "completions":
            return await client.completions.create(prompt=request.prompt, **common)
        # The whole few-shot prompt goes as one user turn: no system turn, as Gemma's template has none
        # (llama.cpp's `gemma` format drops it), and no assistant prefill, which most APIs refuse.
        return await client.chat.completions.create(messages=[{"role": "user", "content": request.prompt}], **common)

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
        error = redact(describe_error(err), self._key)
        return LogprobReply(request.key, None, None, tries.attempt_s, tries.retries, tries.backoff_s, error)

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

    def _retry_wait(self, err: Exception, retries_so_far: int) -> float | None:
        """Seconds to wait before the next attempt, or None when the error is final."""
        if retries_so_far >= self.spec.max_retries or not is_retryable(err):
            return None
        after = retry_after_s(err)
        if after is not None:
            return min(after, MAX_RETRY_AFTER_S)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0**retries_so_far)
        return ceiling * random.uniform(0.5, 1.0)  # jitter keeps concurrent callers from retrying in step

    def _result(self, request: GenerationRequest, response: Any, tries: Attempts) -> GenerationResult:
        choice = response.choices[0]
        if self.spec.endpoint == "completions":
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

    def _failed(self, request: GenerationRequest, err: Exception, tries: Attempts) -> GenerationResult:
        return GenerationResult(
            key=request.key,
            text=None,
            prompt_tokens=None,
            output_tokens=None,
            latency_s=tries.attempt_s,
            error=redact(describe_error(err), self._key),
            retries=tries.retries,
            backoff_s=tries.backoff_s,
        )


# ---------------------------------------------------------------- helpers


def read_api_key(spec: ModelSpec) -> str | None:
    if spec.api_key_env is None:
        return None
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise RoiError(f"model '{spec.name}': the environment variable {spec.api_key_env} (api_key_env) is not set")
    return key


def safe_url(url: str | None) -> str:
    """The base URL without any user:password part, for logs and the store."""
    if url is None:
        return "https://api.openai.com/v1 (default)"
    return re.sub(r"//[^/@]*@", "//", url)


def is_retryable(err: Exception) -> bool:
    import openai

    if isinstance(err, openai.APIConnectionError):  # includes timeouts and dropped connections
        return True
    if isinstance(err, openai.APIStatusError):
        return err.status_code in RETRYABLE_STATUS or err.status_code >= 500
    return False


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


def describe_error(err: Exception) -> str:
    """A one-line error for the store: the kind, the HTTP status and the start of the server's message."""
    status = getattr(err, "status_code", None)
    message = " ".join(str(getattr(err, "message", err)).split())[:300]
    head = type(err).__name__ + (f" (HTTP {status})" if status is not None else "")
    return f"{head}: {message}" if message else head


def redact(text: str, key: str | None) -> str:
    # A server may echo the request's Authorization header in an error body, and a connection error
    # names the URL, which may carry user:password.
    text = re.sub(r"//[^/@\s]*@", "//", text)
    return text.replace(key, "[redacted]") if key else text


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
    return TokenLogprobs(tokens, offsets, values, tops)
