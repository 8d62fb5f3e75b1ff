"""The OpenAI-compatible backend against a real local HTTP server with scripted replies."""

from __future__ import annotations

import logging

from support.openai_server import Reply, ScriptedServer, completion

from gazal.generation.base import GenerationParams
from gazal.generation.openai import OpenAIBackend, OpenAISettings

MSGS = [{"role": "user", "content": "Q?"}]
KEY = "sk-test-SECRET-123"


def backend(url, **kw):
    settings = OpenAISettings(base_url=url, model="tiny", api_key_env="GAZAL_TEST_KEY",
                              backoff_base_s=0.01, backoff_max_s=0.05, **kw)
    return OpenAIBackend(settings)


def test_429_then_success_and_key_sent(monkeypatch):
    monkeypatch.setenv("GAZAL_TEST_KEY", KEY)

    def handler(req, n):
        if n == 1:
            return Reply(429, {"error": "slow down"}, headers={"Retry-After": "0"})
        return completion("The answer is (C).", completion_tokens=5)

    with ScriptedServer(handler) as srv:
        b = backend(srv.url)
        [gen] = b.generate([MSGS], GenerationParams(max_new_tokens=16, thinking=False))
        b.close()
    assert gen.text == "The answer is (C)." and gen.finish_reason == "stop"
    assert gen.n_completion_tokens == 5 and b.retries == 1
    assert srv.headers[-1]["Authorization"] == f"Bearer {KEY}"
    body = srv.requests[-1]
    assert body["max_tokens"] == 16 and body["temperature"] == 0.0
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_timeout_then_success():
    def handler(req, n):
        return Reply(200, completion("late").body, delay=1.0) if n == 1 else completion("ok")

    with ScriptedServer(handler) as srv:
        b = backend(srv.url, timeout_s=0.3)
        [gen] = b.generate([MSGS], GenerationParams())
        b.close()
    assert gen.text == "ok" and b.retries == 1


def test_malformed_reply_retried_then_gives_up_without_leaking_key(monkeypatch, caplog):
    monkeypatch.setenv("GAZAL_TEST_KEY", KEY)

    def handler(req, n):
        return Reply(200, f"not json {KEY}".encode())

    with ScriptedServer(handler) as srv, caplog.at_level(logging.DEBUG, logger="gazal"):
        b = backend(srv.url, max_retries=2)
        [gen] = b.generate([MSGS], GenerationParams())
        b.close()
    assert gen.finish_reason == "error" and "malformed reply" in gen.error
    assert "gave up after 3 attempts" in gen.error and len(srv.requests) == 3
    assert KEY not in gen.error and KEY not in caplog.text


def test_400_is_not_retried():
    with ScriptedServer(lambda req, n: Reply(400, {"error": "bad model"})) as srv:
        b = backend(srv.url)
        [gen] = b.generate([MSGS], GenerationParams())
        b.close()
    assert gen.finish_reason == "error" and "HTTP 400" in gen.error and len(srv.requests) == 1


def test_reasoning_content_becomes_think_block_and_order_is_kept():
    def handler(req, n):
        q = req["messages"][-1]["content"]
        return completion(f"answer to {q}", reasoning="thinking", finish_reason="length")

    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    seen = []
    with ScriptedServer(handler) as srv:
        b = backend(srv.url, concurrency=4)
        gens = b.generate(convs, GenerationParams(temperature=0.7, top_p=0.9, seed=1),
                          on_result=lambda i, g: seen.append(i))
        b.close()
    assert [g.text for g in gens] == [f"<think>\nthinking\n</think>\n\nanswer to q{i}"
                                      for i in range(12)]
    assert sorted(seen) == list(range(12)) and all(g.finish_reason == "length" for g in gens)
    assert srv.requests[0]["top_p"] == 0.9
    assert "top_k" not in srv.requests[0] and "min_p" not in srv.requests[0]  # only when set
    # request i samples with seed + i, so identical prompts would still differ
    assert sorted(r["seed"] for r in srv.requests) == list(range(1, 13))


def test_top_k_and_min_p_are_sent_when_set():
    with ScriptedServer(lambda req, n: completion("(A)")) as srv:
        b = backend(srv.url)
        b.generate([MSGS], GenerationParams(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05))
        b.generate([MSGS], GenerationParams(top_k=20, min_p=0.05))  # greedy: not sent
        b.close()
    sampled, greedy = srv.requests
    assert (sampled["top_k"], sampled["min_p"], sampled["top_p"]) == (20, 0.05, 0.95)
    assert "top_k" not in greedy and "min_p" not in greedy
