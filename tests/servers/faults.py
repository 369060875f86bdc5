"""A small HTTP proxy on loopback that passes requests to a real server, except those it is told to
spoil: 429 with Retry-After, 500, a hang past the client's timeout, a dropped connection, or a real
reply with its logprobs removed (a server that gives none)."""

from __future__ import annotations

import enum
import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class Fault(enum.Enum):
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    HANG = "hang"
    DROP = "drop"
    NO_LOGPROBS = "no-logprobs"  # forwarded, but every choice's `logprobs` comes back null


@dataclass
class Rule:
    fault: Fault
    match: str | None  # a text the request body must contain; None: any request
    times: int


@dataclass
class Event:
    fault: Fault | None  # None: passed through
    body: str


@dataclass
class FaultProxy:
    upstream_port: int
    retry_after_s: float = 1.0
    hang_s: float = 60.0
    rules: list[Rule] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def inject(self, fault: Fault, match: str | None = None, times: int = 1) -> None:
        with self._lock:
            self.rules.append(Rule(fault, match, times))

    def take_fault(self, body: str) -> Fault | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and (rule.match is None or rule.match in body):
                    rule.times -= 1
                    self.events.append(Event(rule.fault, body))
                    return rule.fault
            self.events.append(Event(None, body))
            return None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()  # lets hanging handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            self._handle(self.rfile.read(int(self.headers.get("content-length") or 0)))

        def _handle(self, body: bytes) -> None:
            fault = proxy.take_fault(body.decode("utf-8", errors="replace"))
            if fault is Fault.RATE_LIMIT:
                self._reply(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": f"{proxy.retry_after_s:g}"})
            elif fault is Fault.SERVER_ERROR:
                # A careless server echoing the request's headers: the client must keep the key out of its records.
                echo = f'{{"error": {{"message": "boom; you sent {self.headers.get("authorization")}"}}}}'
                self._reply(500, echo.encode())
            elif fault is Fault.HANG:
                proxy._released.wait(proxy.hang_s)
                self.close_connection = True
            elif fault is Fault.DROP:
                self.close_connection = True  # close without a byte of response
            else:
                self._forward(body, strip_logprobs=fault is Fault.NO_LOGPROBS)

        def _forward(self, body: bytes, strip_logprobs: bool = False) -> None:
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=proxy.hang_s)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                if strip_logprobs and response.status == 200:
                    payload = _without_logprobs(payload)
                passed = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                self._reply(response.status, payload, passed)
            except OSError:
                self.close_connection = True  # upstream gone: the client sees a dropped connection
            finally:
                upstream.close()

        def _reply(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if not any(k.lower() == "content-type" for k in headers or {}):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _without_logprobs(payload: bytes) -> bytes:
    reply = json.loads(payload)
    for choice in reply.get("choices", []):
        choice["logprobs"] = None
    return json.dumps(reply).encode()
