"""A real local OpenAI-compatible HTTP server for tests, with scripted replies.

``ScriptedServer(handler)`` serves ``POST /v1/chat/completions`` on 127.0.0.1 (a free port)
in a thread. ``handler(request_json, n)`` returns a :class:`Reply` (status, JSON body or raw
bytes, delay, headers); ``n`` counts requests. Every request is recorded (body and headers)
so tests can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> raw
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str, *, finish_reason: str = "stop", prompt_tokens: int = 10,
               completion_tokens: int | None = None, reasoning: str | None = None) -> Reply:
    """A well-formed chat completion reply."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return Reply(body={
        "id": "cmpl-test", "object": "chat.completion", "model": "test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens,
                  "completion_tokens": completion_tokens or len(content.split())}})


class ScriptedServer:
    """Context manager running the server; ``.url`` is the ``/v1`` base URL."""

    def __init__(self, handler: Callable[[dict[str, Any], int], Reply]):
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._count = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer._count += 1
                    n = outer._count
                    outer.requests.append(payload)
                    outer.headers.append(dict(self.headers))
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                reply = outer.handler(payload, n)
                if reply.delay:
                    time.sleep(reply.delay)
                raw = reply.body if isinstance(reply.body, bytes) else \
                    json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # client timed out
                    pass

            do_GET = do_POST  # a client that follows a redirect of a POST arrives as GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
