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


def test_a_redirect_to_another_host_is_refused_and_the_key_stays_home(monkeypatch):
    monkeypatch.setenv("GAZAL_TEST_KEY", KEY)
    with ScriptedServer(lambda req, n: completion("from the other host")) as other:
        # 127.0.0.1 -> localhost: another host name for urllib, the same machine for the test
        elsewhere = other.url.replace("127.0.0.1", "localhost") + "/chat/completions"
        for code in (301, 302, 303, 307, 308):
            with ScriptedServer(lambda req, n, code=code: Reply(
                    code, {"moved": True}, headers={"Location": elsewhere})) as srv:
                b = backend(srv.url)
                [gen] = b.generate([MSGS], GenerationParams())
                b.close()
            assert gen.finish_reason == "error" and gen.text == ""
            assert f"HTTP {code}" in gen.error and "not followed" in gen.error
            assert elsewhere in gen.error and len(srv.requests) == 1  # not retried
        assert other.requests == [] and other.headers == []  # nothing, no key, reached it


def test_the_key_is_masked_before_an_error_body_is_cut(monkeypatch):
    monkeypatch.setenv("GAZAL_TEST_KEY", KEY)
    for status in (400, 503):  # failed at once / retried then given up
        for at in (290, 295, 299):  # the key straddles the 300 characters shown
            body = ("x" * at + f"{KEY} is not a valid key").encode()
            with ScriptedServer(lambda req, n, body=body, status=status: Reply(status, body)) as srv:
                b = backend(srv.url, max_retries=1)
                [gen] = b.generate([MSGS], GenerationParams())
                b.close()
            assert gen.finish_reason == "error" and f"HTTP {status}" in gen.error
            assert "sk-" not in gen.error and "x" * at + "***"[: 300 - at] in gen.error
    # a malformed 200 reply's snippet too
    with ScriptedServer(lambda req, n: Reply(200, ("y" * 190 + KEY).encode())) as srv:
        b = backend(srv.url, max_retries=0)
        [gen] = b.generate([MSGS], GenerationParams())
        b.close()
    assert "malformed reply" in gen.error and "sk-" not in gen.error
