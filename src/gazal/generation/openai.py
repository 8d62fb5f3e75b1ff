"""OpenAI-compatible chat completions backend (vLLM server, TGI, SGLang, hosted APIs).

- concurrency: at most ``concurrency`` requests in flight (a thread pool);
- rate limit: at most ``requests_per_minute`` request starts per minute, if set;
- retries: 429, 5xx, timeouts, connection errors and malformed replies are retried with
  exponential backoff and full jitter (AWS Architecture Blog, "Exponential Backoff And
  Jitter", 2015), honouring ``Retry-After``; other 4xx (bad request, bad key, unknown model)
  fail at once since retrying cannot fix them;
- the API key is read from the environment variable named by ``api_key_env`` at request time
  and is never stored in configs, logs, outputs or error messages (any echo is scrubbed
  before a body is cut short, so no part of it survives the cut);
- redirects are never followed: ``urllib`` would resend the request, ``Authorization``
  header included, to whatever host the ``Location`` names (and accept that host's reply);
  a 3xx reply is an error naming where it pointed, to be fixed in ``base_url``.

It uses only the standard library, so no SDK is needed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gazal.generation.base import Conversation, Generation, GenerationParams

log = logging.getLogger("gazal")

__all__ = ["BackendError", "OpenAIBackend", "OpenAISettings"]

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_BODY_READ = 65536  # bytes of an error body read (then scrubbed, then cut to _BODY_SHOWN)
_BODY_SHOWN = 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: ``urllib``'s default handler follows 301/302/303 for a POST
    (as a GET) to any host with the ``Authorization`` header still set."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


class BackendError(RuntimeError):
    """A request failed for good (message is safe to show: no API key)."""


@dataclass(frozen=True)
class OpenAISettings:
    """Connection settings (documented fields; all recipe values)."""

    base_url: str = "http://localhost:8000/v1"
    model: str = ""
    api_key_env: str | None = "OPENAI_API_KEY"  # name of the env var, never the key itself
    concurrency: int = 8
    requests_per_minute: float | None = None
    max_retries: int = 6
    timeout_s: float = 600.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    extra_body: dict[str, Any] = field(default_factory=dict)


class _RateLimiter:
    """Spaces request starts at least ``60 / rpm`` seconds apart (thread-safe)."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            time.sleep(start - now)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIBackend:
    """Chat completions over HTTP. ``generate`` never raises for one failed request: after the
    retries it returns a ``Generation`` with ``finish_reason="error"`` and the reason."""

    name = "openai"

    def __init__(self, settings: OpenAISettings, *, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        if not settings.model:
            raise BackendError("openai backend: 'model' (the served model name) is required")
        self.settings = settings
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._limiter = _RateLimiter(settings.requests_per_minute)
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.concurrency),
                                        thread_name_prefix="gazal-openai")
        self.retries = 0  # retried attempts, for reports
        # requests per generate() call of a caller that saves progress: enough to keep every
        # worker busy between saves
        self.chunk_size = max(64, 8 * settings.concurrency)

    # ------------------------------------------------------------------ public

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams,
                 on_result: Callable[[int, Generation], None] | None = None,
                 seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions in input order; request ``i`` sends ``seed: seeds[i]`` (default
        ``params.seed + i``, so identical prompts still sample differently)."""
        results: list[Generation | None] = [None] * len(conversations)

        def run(i: int) -> None:
            seed = seeds[i] if seeds is not None else \
                (params.seed + i if params.seed is not None else None)
            gen = self._complete(conversations[i], params, seed)
            results[i] = gen
            if on_result is not None:
                on_result(i, gen)

        futures = [self._pool.submit(run, i) for i in range(len(conversations))]
        for f in futures:
            f.result()
        return [r for r in results if r is not None]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ internals

    def _api_key(self) -> str | None:
        name = self.settings.api_key_env
        return os.environ.get(name) if name else None

    def _scrub(self, text: str) -> str:
        key = self._api_key()
        return text.replace(key, "***") if key else text

    def _body(self, messages: Conversation, params: GenerationParams,
              seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.settings.model, "messages": messages,
                                "max_tokens": params.max_new_tokens,
                                "temperature": max(0.0, params.temperature)}
        if not params.greedy:
            body["top_p"] = params.top_p
            # Not OpenAI API fields: vLLM and SGLang servers accept them as extra sampling
            # parameters; sent only when set, so other servers see a standard body.
            if params.top_k:
                body["top_k"] = params.top_k
            if params.min_p:
                body["min_p"] = params.min_p
        if seed is not None:
            body["seed"] = seed
        if not params.thinking:
            # vLLM / SGLang pass this to the chat template (Qwen3's enable_thinking).
            body["chat_template_kwargs"] = {"enable_thinking": False}
        body.update(self.settings.extra_body)
        return body

    def _complete(self, messages: Conversation, params: GenerationParams,
                  seed: int | None = None) -> Generation:
        s = self.settings
        body = json.dumps(self._body(messages, params, seed)).encode("utf-8")
        last_error = ""
        for attempt in range(s.max_retries + 1):
            self._limiter.wait()
            try:
                return self._post(body)
            except _Retryable as err:
                last_error = str(err)
                if attempt == s.max_retries:
                    break
                self.retries += 1
                delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** attempt)
                delay = self._rng.uniform(0, delay)  # full jitter
                if err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, s.backoff_max_s))
                log.debug("request failed (%s); retry %d in %.1fs", last_error, attempt + 1,
                          delay)
                self._sleep(delay)
            except BackendError as err:
                return Generation(text="", finish_reason="error", error=str(err))
        return Generation(text="", finish_reason="error",
                          error=f"gave up after {s.max_retries + 1} attempts: {last_error}")

    def _post(self, body: bytes) -> Generation:
        s = self.settings
        url = s.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(req, timeout=s.timeout_s) as resp:
                if resp.geturl() != url:  # never the case without redirects; kept as a guard
                    raise BackendError(f"the reply to {url} came from {resp.geturl()}; "
                                       "redirected replies are not accepted")
                raw = resp.read()
        except urllib.error.HTTPError as err:
            detail = self._scrub(err.read(_BODY_READ).decode("utf-8", "replace"))
            detail = detail[:_BODY_SHOWN]
            if 300 <= err.code < 400:
                raise BackendError(
                    f"HTTP {err.code} from {url}: a redirect to "
                    f"{self._scrub(str(err.headers.get('Location')))}, not followed (the API "
                    "key would go with it); set base_url to the server's real address"
                ) from None
            msg = f"HTTP {err.code} from {url}: {detail}"
            if err.code in RETRYABLE_STATUS:
                raise _Retryable(msg, _retry_after(err.headers.get("Retry-After"))) from None
            raise BackendError(msg) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
            reason = self._scrub(str(getattr(err, "reason", err)))
            raise _Retryable(f"{type(err).__name__} from {url}: {reason}") from None
        return self._parse(raw, url)

    def _parse(self, raw: bytes, url: str) -> Generation:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            snippet = self._scrub(raw[:_BODY_READ].decode("utf-8", "replace"))[:200]
            raise _Retryable(f"malformed reply from {url} ({type(err).__name__}: {err}): "
                             f"{snippet!r}") from None
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip() and "</think>" not in content:
            content = f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"
        usage = data.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Generation(text=content, finish_reason=finish,
                          n_prompt_tokens=usage.get("prompt_tokens"),
                          n_completion_tokens=usage.get("completion_tokens"))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
