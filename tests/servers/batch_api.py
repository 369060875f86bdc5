"""A provider's batch control plane on loopback: the OpenAI files and batches endpoints, each job's lines
executed one by one on a real server upstream (vLLM or llama.cpp), its output and error files served
back. Tests can hold jobs before they run (to kill roi while one is pending), fail chosen lines, spoil
chosen output lines, forget a job as an expired one is forgotten (404), and count uploads and job
creations (a resumed run must not submit twice)."""

from __future__ import annotations

import email.parser
import email.policy
import http.client
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Job:
    number: int  # 1 for the first job created
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, str]
    status: str = "validating"
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": "24h", "status": self.status, "created_at": self.created_at,
            "output_file_id": self.output_file_id, "error_file_id": self.error_file_id, "metadata": self.metadata,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
        }  # fmt: skip


@dataclass
class BatchApi:
    upstream_port: int
    fail_custom_ids: set[str] = field(default_factory=set)  # lines answered with a 500 in the error file
    garble_custom_ids: set[str] = field(default_factory=set)  # lines cut short in the output file
    files: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    uploads: int = 0
    created: int = 0
    release: threading.Event = field(default_factory=threading.Event)  # held jobs wait for this before running
    _free_until: int = 0  # jobs numbered above this are held (while `release` is clear)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.release.set()

    def hold(self, after: int = 0) -> None:
        """Jobs created from now on wait for `release`, except the next `after` of them."""
        self._free_until = self.created + after
        self.release.clear()

    def forget(self, batch_id: str) -> None:
        """Drop a job and its input file, as a provider does once they expire (both then answer 404)."""
        job = self.jobs.pop(batch_id)
        self.files.pop(job.input_file_id, None)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> BatchApi:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------ the control plane

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._ids)}"

    def upload(self, content: bytes) -> dict[str, Any]:
        file_id = self.new_id("file")
        with self._lock:
            self.files[file_id] = content
            self.uploads += 1
        return file_json(file_id, content)

    def create(self, request: dict[str, Any]) -> Job | None:
        """A new job on an uploaded file; None when there is no such file."""
        if request["input_file_id"] not in self.files:
            return None
        with self._lock:
            self.created += 1
            number = self.created
        job = Job(number, self.new_id("batch"), request["input_file_id"], request["endpoint"],
                  request.get("metadata") or {})  # fmt: skip
        self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        lines = [json.loads(x) for x in self.files[job.input_file_id].decode().splitlines() if x.strip()]
        job.total = len(lines)
        job.status = "in_progress"
        if job.number > self._free_until:
            self.release.wait()
        output, errors = [], []
        for line in lines:
            status, body = self._execute(line)
            record = {"id": self.new_id("req"), "custom_id": line["custom_id"], "error": None,
                      "response": {"status_code": status, "request_id": self.new_id("r"), "body": body}}  # fmt: skip
            text = json.dumps(record)
            text = text[: len(text) // 2] if line["custom_id"] in self.garble_custom_ids else text
            (output if status == 200 else errors).append(text)
            job.completed += status == 200
            job.failed += status != 200
        if self.garble_custom_ids:
            output.append('["a line that is JSON but not a request\'s result"]')
        job.status = "finalizing"
        job.output_file_id = self._store("\n".join(output)) if output else None
        job.error_file_id = self._store("\n".join(errors)) if errors else None
        job.status = "completed"

    def _execute(self, line: dict[str, Any]) -> tuple[int, Any]:
        if line["custom_id"] in self.fail_custom_ids:
            return 500, {"error": {"message": "the upstream failed this request", "type": "server_error"}}
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
        try:
            payload = json.dumps(line["body"]).encode()
            upstream.request("POST", line["url"], body=payload, headers={"Content-Type": "application/json"})
            response = upstream.getresponse()
            return response.status, json.loads(response.read())
        finally:
            upstream.close()

    def _store(self, text: str) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = (text + "\n").encode()
        return file_id


def file_json(file_id: str, content: bytes) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl", "purpose": "batch", "status": "processed"}  # fmt: skip


def multipart_file(content_type: str, body: bytes) -> bytes:
    """The `file` part of a multipart/form-data upload."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise ValueError("no file part")


def _handler_for(api: BatchApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/v1/batches":
                data = [job.as_json() for job in reversed(list(api.jobs.values()))]
                return self._json(200, {"object": "list", "data": data, "has_more": False})
            if match := re.fullmatch(r"/v1/batches/([\w-]+)", path):
                job = api.jobs.get(match[1])
                return (
                    self._json(200, job.as_json()) if job else self._json(404, {"error": {"message": "no such batch"}})
                )
            if match := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
                content = api.files.get(match[1])
                return (
                    self._reply(200, content, "application/octet-stream")
                    if content is not None
                    else self._json(404, {})
                )
            self._json(404, {"error": {"message": f"no route {path}"}})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/v1/files":
                return self._json(200, api.upload(multipart_file(self.headers["content-type"], body)))
            if self.path == "/v1/batches":
                job = api.create(json.loads(body))
                if job is None:
                    return self._json(404, {"error": {"message": "no such file"}})
                return self._json(200, job.as_json())
            self._json(404, {"error": {"message": f"no route {self.path}"}})

        def _json(self, status: int, payload: Any) -> None:
            self._reply(status, json.dumps(payload).encode(), "application/json")

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
