"""Fault injection and request log of the emulator (switchable at run time through ``/_emulator/faults``).

None of this is part of data.gouv.fr. It reproduces what a client meets in production (research §2, §7):
slow answers, 5xx, 429 with ``Retry-After`` from a proxy, and the worst case of all: a create that is
committed server-side while the client never sees the answer (the response is delayed beyond the client's
timeout, or the connection is dropped half-way through the body).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import deque
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class FaultSettings(BaseModel):
    """What to inject. Counters (``*_next``) decrease as faults are served; rates are probabilities."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(0.0, ge=0, description="Seconds added before every API request.")
    fail_next: int = Field(0, ge=0, description="The next N matching requests answer fail_status.")
    fail_status: int = Field(500, ge=500, le=599)
    error_rate: float = Field(0.0, ge=0, le=1, description="Probability that a request answers error_status.")
    error_status: int = Field(500, ge=500, le=599)
    throttle_next: int = Field(0, ge=0, description="The next N matching requests answer 429.")
    throttle_rate: float = Field(0.0, ge=0, le=1)
    retry_after: int = Field(1, ge=0, description="Retry-After (seconds) sent with 429.")
    timeout_after_create_next: int = Field(
        0, ge=0, description="The next N creates are committed, then lost."
    )
    timeout_after_create_rate: float = Field(0.0, ge=0, le=1)
    lose_answer_next: int = Field(
        0, ge=0, description="The next N matching requests are processed, then their 2xx answer is lost."
    )
    timeout_mode: Literal["delay", "drop", "mixed"] = Field(
        "delay", description="delay: answer after timeout_delay; drop: close mid-body; mixed: either."
    )
    timeout_delay: float = Field(5.0, ge=0)
    match_method: str | None = Field(None, description="Only requests with this method are affected.")
    match_path: str | None = Field(None, description="Only requests whose path matches this regex.")
    skip: int = Field(0, ge=0, description="Matching requests let through before the *_next counters start.")
    seed: int | None = None


class Runtime:
    """Mutable run-time switches shared by the middleware and the routes."""

    def __init__(self, *, read_only: bool, allow_local_urls: bool) -> None:
        self.read_only = read_only
        self.allow_local_urls = allow_local_urls
        self.faults = FaultSettings()
        self.random = random.Random()
        self.lock = threading.Lock()
        self.log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.counter = 0

    def set_faults(self, settings: FaultSettings) -> None:
        with self.lock:
            self.faults = settings
            self.random = random.Random(settings.seed)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.counter += 1
            entry["n"] = self.counter
            self.log.append(entry)


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _nginx_body(status: int, reason: str) -> bytes:
    return f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".encode()  # noqa: E501


_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


class _Decision:
    """What the middleware does with one request."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.status: int | None = None
        self.retry_after: int | None = None
        self.lose_create: str | None = None  # "delay" | "drop" when a create's answer must be lost
        self.any_success = False  # lose any 2xx answer (lose_answer_next), not only a 201 create
        self.delay = 0.0


class FaultMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        entry: dict[str, Any] = {
            "at": time.time(),
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "status": None,
            "fault": None,
        }
        scope.setdefault("state", {})["log"] = entry
        if not _is_api(path):
            await self._call(scope, receive, send, entry)
            return

        decision = self._decide_before(method, path)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.status is not None:
            entry["fault"] = f"injected {decision.status}"
            entry["status"] = decision.status
            self.runtime.record(entry)
            await self._send_fault(send, decision.status, decision.retry_after)
            return
        if decision.lose_create is None:
            await self._call(scope, receive, send, entry)
            return
        await self._call_and_maybe_lose(scope, receive, send, entry, decision)

    # ----------------------------------------------------------------------------------------- decisions

    def _decide_before(self, method: str, path: str) -> _Decision:
        decision = _Decision()
        runtime = self.runtime
        with runtime.lock:
            faults = runtime.faults
            decision.latency = faults.latency
            if faults.match_method and faults.match_method.upper() != method:
                return decision
            if faults.match_path and not re.search(faults.match_path, path):
                return decision
            countdowns = (
                faults.fail_next
                or faults.throttle_next
                or faults.timeout_after_create_next
                or faults.lose_answer_next
            )
            if countdowns and faults.skip:
                faults.skip -= 1
                return decision
            rnd = runtime.random
            if faults.throttle_next:
                faults.throttle_next -= 1
                decision.status, decision.retry_after = 429, faults.retry_after
            elif faults.throttle_rate and rnd.random() < faults.throttle_rate:
                decision.status, decision.retry_after = 429, faults.retry_after
            elif faults.fail_next:
                faults.fail_next -= 1
                decision.status = faults.fail_status
            elif faults.error_rate and rnd.random() < faults.error_rate:
                decision.status = faults.error_status
            elif faults.lose_answer_next:
                decision.lose_create = "drop" if faults.timeout_mode == "drop" else "delay"
                decision.any_success = True
                decision.delay = faults.timeout_delay
            elif method == "POST" and (
                faults.timeout_after_create_next
                or (faults.timeout_after_create_rate and rnd.random() < faults.timeout_after_create_rate)
            ):
                # Decided now, applied only if the request turns out to be a successful create (201).
                mode = faults.timeout_mode
                if mode == "mixed":
                    mode = "drop" if rnd.random() < 0.5 else "delay"
                decision.lose_create = mode
                decision.delay = faults.timeout_delay
        return decision

    def _consume_lost_answer(self, any_success: bool) -> None:
        with self.runtime.lock:
            faults = self.runtime.faults
            if any_success and faults.lose_answer_next:
                faults.lose_answer_next -= 1
            elif not any_success and faults.timeout_after_create_next:
                faults.timeout_after_create_next -= 1

    # ----------------------------------------------------------------------------------------- sending

    async def _send_fault(self, send: Send, status: int, retry_after: int | None) -> None:
        headers: list[tuple[bytes, bytes]]
        if status == 500:
            # What udata itself answers on an unhandled exception (flask-restx).
            body = json.dumps({"message": "Internal Server Error"}).encode()
            headers = [(b"content-type", b"application/json")]
        elif status == 429:
            # A reverse proxy's answer: udata implements no rate limit (research §2 "Rate limits").
            body = _nginx_body(429, "Too Many Requests")
            headers = [(b"content-type", b"text/html")]
            if retry_after is not None:
                headers.append((b"retry-after", str(retry_after).encode()))
        else:
            body = _nginx_body(status, _REASONS.get(status, "Error"))
            headers = [(b"content-type", b"text/html")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _call(self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any]) -> None:
        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            if _is_api(scope["path"]):
                self.runtime.record(entry)

    async def _call_and_maybe_lose(
        self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any], decision: _Decision
    ) -> None:
        messages: list[Message] = []

        async def buffering_send(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, buffering_send)
        finally:
            start = next((m for m in messages if m["type"] == "http.response.start"), None)
            entry["status"] = start["status"] if start else None
            status = start["status"] if start else 0
            lost = (200 <= status < 300) if decision.any_success else status == 201
            if lost:
                self._consume_lost_answer(decision.any_success)
                what = "request processed" if decision.any_success else "create committed"
                entry["fault"] = f"{what}, answer lost ({decision.lose_create})"
            self.runtime.record(entry)
        if not lost:
            for message in messages:
                await send(message)
            return
        if decision.lose_create == "delay":
            # The client gave up long before this: the server-side commit stands, the answer goes nowhere.
            await asyncio.sleep(decision.delay)
            for message in messages:
                await send(message)
            return
        # "drop": announce the full length, send half the body, then break the connection.
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        assert start is not None
        await send(start)
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # Returning with the response incomplete makes uvicorn close the connection ("ASGI callable returned
        # without completing response"): the client sees the peer close mid-body.
