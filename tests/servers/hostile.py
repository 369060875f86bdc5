"""A misbehaving server on loopback, written on raw sockets so it can break HTTP as an attacker or a
broken proxy would: echo the caller's Authorization header in a 400 body after some padding, drip
a reply one byte at a time, send headers without end, answer a line that is not HTTP, refuse the key
(401) or ask for a Retry-After of an hour."""

from __future__ import annotations

import contextlib
import enum
import json
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import BinaryIO


class Behaviour(enum.Enum):
    ECHO_KEY = "echo-key"  # 400 whose JSON message repeats the Authorization header after padding
    DRIP_BODY = "drip-body"  # 200 with a long body sent one byte per `drip_s`
    ENDLESS_HEADERS = "endless-headers"  # a status line, then one header per `drip_s`, never ending
    GARBAGE = "garbage"  # one line that is not HTTP, then the connection closes
    UNAUTHORIZED = "401"  # 401 invalid key
    RETRY_LATER = "429-hour"  # 429 with Retry-After: 3600
    OK = "ok"  # a small valid completion


# Enough that the echoed header straddles the 300-character cut of a stored error message.
PADDING = "x" * 160


@dataclass
class HostileServer:
    behaviour: Behaviour
    drip_s: float = 0.5
    requests: int = 0
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> HostileServer:
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # ends every drip loop
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def sleep(self) -> bool:
        """Wait one drip interval; False once the server is stopping."""
        return not self._stop.wait(self.drip_s)


def _handler_for(server: HostileServer) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            headers = _read_request(self.rfile)
            if headers is None:
                return
            server.requests += 1
            server.seen_headers.append(headers)
            with contextlib.suppress(OSError):  # the client gave up: that is the point of most behaviours
                _answer(server, self.connection, headers)

    return Handler


def _read_request(reader: BinaryIO) -> dict[str, str] | None:
    if not reader.readline(65536):
        return None
    headers: dict[str, str] = {}
    while True:
        raw = reader.readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length:
        reader.read(length)
    return headers


def _answer(server: HostileServer, conn: socket.socket, headers: dict[str, str]) -> None:
    kind = server.behaviour
    if kind is Behaviour.ECHO_KEY:
        echoed = headers.get("authorization", "")
        message = f"{PADDING} invalid request; you sent Authorization: {echoed} (key {echoed.split()[-1]})"
        _reply(conn, 400, {"error": {"message": message, "type": "invalid_request_error"}})
    elif kind is Behaviour.UNAUTHORIZED:
        _reply(conn, 401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
    elif kind is Behaviour.RETRY_LATER:
        _reply(conn, 429, {"error": {"message": "slow down"}}, extra={"Retry-After": "3600"})
    elif kind is Behaviour.OK:
        _reply(conn, 200, _completion(" ok"))
    elif kind is Behaviour.GARBAGE:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n")
    elif kind is Behaviour.ENDLESS_HEADERS:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        number = 0
        while server.sleep():
            number += 1
            conn.sendall(f"X-Header-{number}: {number}\r\n".encode())
    elif kind is Behaviour.DRIP_BODY:
        body = json.dumps(_completion(" " + "ok " * 5000)).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode())
        for byte in body:
            if not server.sleep():
                return
            conn.sendall(bytes([byte]))


def _reply(conn: socket.socket, status: int, body: dict[str, object], extra: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head.append("Connection: close")
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)


def _completion(text: str) -> dict[str, object]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "hostile",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
