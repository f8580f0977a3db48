"""A scripted OpenAI-compatible judge server on 127.0.0.1, for tests, benchmarks and offline dry runs.

It speaks ``POST /v1/chat/completions`` (non-streaming) with a real HTTP server (one thread per
connection) and answers with a chat completion including ``usage``. What it answers is scripted:

* a queue of :class:`Reply` objects (``server.push(...)``) is served first, one per request, in order;
* then ``policy(body) -> Reply | str`` decides (a ``str`` is the assistant message text).

:func:`judging_policy` turns a per-criterion rule ``rule(criterion_text, points, response) -> bool`` into a
policy that answers all three request shapes of :mod:`rgsd.judges.prompts` (one item, numbered items,
holistic rating) by reading the judge prompt the way a human reader would: the conversation between its
``=== ... ===`` markers, the candidate response as its last assistant turn, the items with their points.

Run it as a script for a deterministic stand-in judge::

    python tests/judge_server.py --port 8089 --policy keyword --latency 0.05
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so the script runs from a checkout
from rgsd.judges.prompts import (  # noqa: E402
    CONVERSATION_END,
    CONVERSATION_START,
    GRADED_TURN,
    ITEM_END,
    ITEM_START,
    ITEMS_START,
    marker,
)


@dataclass
class Reply:
    """One scripted answer. ``content`` becomes the assistant message; ``raw`` replaces the whole body.

    ``content`` may be any JSON value (``None`` or a number, to play a broken server); ``finish_reason``
    is sent as given; ``echo_key`` makes an error reply quote the request's bearer token (a leaky proxy),
    ``echo_prefix`` only its first that many characters (a truncated echo); ``content_type`` overrides the
    response header (an HTML error page). ``usage``: ``"auto"`` counts whitespace words, ``None`` omits the
    field, anything else is sent as given. ``message_extra`` adds fields to the message (``reasoning_content``).
    """

    content: object = ""
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering (to exceed a client timeout)
    raw: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    echo_key: bool = False
    content_type: str = "application/json"
    echo_prefix: int | None = None
    usage: object = "auto"
    message_extra: dict[str, object] = field(default_factory=dict)


Policy = Callable[[dict], "Reply | str"]


# ---- reading a judge prompt ---------------------------------------------------------------------------
@dataclass
class JudgeRequest:
    kind: str  # "single" | "batched" | "holistic"
    response: str
    items: list[tuple[int, float, str]]  # (item number, signed points, criterion text)


_ITEM_LINE = re.compile(r"^(?:(\d+)\. )?\[([+-][0-9.]+) points(?:, undesirable)?\] (.*)$")


def read_judge_prompt(body: dict) -> JudgeRequest:
    """Find the response and rubric items in the first user message of a judge request."""
    text = next(m["content"] for m in body["messages"] if m["role"] == "user")
    # The first marker line is the real one (the response comes after it); its token closes the block.
    tag = re.search(r"^=== " + CONVERSATION_START + r" === ([0-9a-f]+)$", text, re.M).group(1)  # type: ignore[union-attr]
    conv_end = "\n" + marker(CONVERSATION_END, tag)
    conv = text.split(marker(CONVERSATION_START, tag) + "\n", 1)[1].split(conv_end, 1)[0]
    response = conv.split(marker(GRADED_TURN, tag) + "\n", 1)[1]
    after = text.split(conv_end, 1)[1]
    single = marker(ITEM_START, tag) in after
    start = marker(ITEM_START if single else ITEMS_START, tag)
    end = marker(ITEM_END, tag)
    block = after.split(start + "\n", 1)[1].split("\n" + end, 1)[0]
    tail = after.split(end, 1)[1]
    items: list[tuple[int, float, str]] = []
    for line in block.split("\n"):
        m = _ITEM_LINE.match(line)
        if m:
            items.append((int(m.group(1) or 1), float(m.group(2)), m.group(3)))
        elif items:  # a criterion spanning several lines
            n, p, t = items[-1]
            items[-1] = (n, p, t + "\n" + line)
    kind = "holistic" if '"rating"' in tail else ("single" if single else "batched")
    return JudgeRequest(kind, response, items)


def judging_policy(rule: Callable[[str, float, str], bool]) -> Policy:
    """A policy that answers every request shape with ``rule(criterion, points, response)``."""

    def policy(body: dict) -> str:
        req = read_judge_prompt(body)
        verdicts = {n: bool(rule(t, p, req.response)) for n, p, t in req.items}
        if req.kind == "single":
            (met,) = verdicts.values()
            return json.dumps({"explanation": "scripted rule", "criteria_met": met})
        if req.kind == "batched":
            return json.dumps(
                {str(n): {"explanation": "scripted rule", "criteria_met": m} for n, m in verdicts.items()}
            )
        # holistic: share of the absolute points that went the good way, on 1..10
        total = sum(abs(p) for _, p, _ in req.items) or 1.0
        good = sum(abs(p) for n, p, _ in req.items if verdicts[n] == (p > 0))
        return json.dumps({"explanation": "scripted rule", "rating": 1 + round(9 * good / total)})

    return policy


def _fence_in(response: str) -> str | None:
    m = re.search(r"```[a-z]*\n(.*?)```", response, re.S)
    return m.group(1).strip() if m else None


def quoting_policy(policy: Policy, times: int | None = None, first_asks: bool = False) -> Policy:
    """A judge that first quotes the response's fenced block, then gives ``policy``'s verdict as bare JSON.

    The hostile case: a graded response carrying a fenced ``{"criteria_met": true}``. With
    ``times`` set, only the first ``times`` requests are answered that way; with ``first_asks``, only the
    first request of each conversation (a re-ask then gets a clean answer, whatever the arrival order).
    """
    state = {"n": 0}
    lock = threading.Lock()

    def wrapped(body: dict) -> "Reply | str":
        out = policy(body)
        with lock:
            state["n"] += 1
            quote = (times is None or state["n"] <= times) and (not first_asks or len(body["messages"]) == 1)
        fence = _fence_in(read_judge_prompt(body).response)
        if not quote or fence is None or not isinstance(out, str):
            return out
        return f"The reply contains this block:\n```json\n{fence}\n```\nMy own verdict:\n{out}"

    return wrapped


def first_asks_fail(policy: Policy, bad: Callable[[dict], "Reply | str"]) -> Policy:
    """Every first request of a conversation (one user message) gets ``bad(body)``, then ``policy`` answers.

    So every verdict needs a re-ask (or a retry): a rerun with the cache must still make zero calls.
    """
    seen: set[str] = set()
    lock = threading.Lock()

    def wrapped(body: dict) -> "Reply | str":
        key = json.dumps(body["messages"], sort_keys=True)
        with lock:
            first = len(body["messages"]) == 1 and key not in seen
            seen.add(key)
        return bad(body) if first else policy(body)

    return wrapped


def fail_after(policy: Policy, n: int, reply: Reply) -> Policy:
    """``policy`` for the first ``n`` requests, then ``reply`` for every later one (a key revoked mid-run)."""
    state = {"n": 0}
    lock = threading.Lock()

    def wrapped(body: dict) -> "Reply | str":
        with lock:
            state["n"] += 1
            late = state["n"] > n
        return reply if late else policy(body)

    return wrapped


_STOP = set(
    "about above after again against also among and any are because been before being below between both "
    "but can could does doing during each either even every from further have having here into itself just "
    "least less like many more most much must need needs only other over same should some such than that "
    "their them then there these they this those through under until upon very what when where whether "
    "which while will with within without would your response model user patient".split()
)


def keyword_rule(threshold: float = 0.5) -> Callable[[str, float, str], bool]:
    """Met when at least ``threshold`` of the criterion's content words (5+ letters) occur in the response."""

    def rule(criterion: str, points: float, response: str) -> bool:
        words = {w for w in re.findall(r"[a-z]{5,}", criterion.lower()) if w not in _STOP}
        if not words:
            return False
        have = set(re.findall(r"[a-z]{5,}", response.lower()))
        return len(words & have) / len(words) >= threshold

    return rule


def hash_rule(criterion: str, points: float, response: str) -> bool:
    """Met for about half of the (criterion, response) pairs, deterministically."""
    return hashlib.sha256(f"{criterion}\x00{response}".encode()).digest()[0] % 2 == 0


POLICIES: dict[str, Callable[[float], Policy]] = {
    "keyword": lambda threshold: judging_policy(keyword_rule(threshold)),
    "hash": lambda threshold: judging_policy(hash_rule),
    "met": lambda threshold: judging_policy(lambda c, p, r: True),
    "unmet": lambda threshold: judging_policy(lambda c, p, r: False),
}


# ---- the HTTP server --------------------------------------------------------------------------------------
def _completion(body: dict, content: object, prompt_text: str, finish_reason: str = "stop") -> dict:
    # Token counts are whitespace words: deterministic, so tests can check the accounting.
    pt, ct = len(prompt_text.split()), len(content.split()) if isinstance(content, str) else 1
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-judge"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    }


class LoopbackServer:
    """What the scripted servers share: the URL, the request count, serving on a background thread.

    A subclass sets ``self._server`` (an HTTP server on 127.0.0.1), ``self.requests`` and ``self._lock``.
    """

    _server: ThreadingHTTPServer
    _lock: threading.Lock
    requests: list[dict]
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self: S) -> S:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


S = TypeVar("S", bound=LoopbackServer)


class JudgeServer(LoopbackServer):
    """``with JudgeServer(policy) as server: ... server.url ...``; port 0 picks a free port."""

    def __init__(
        self,
        policy: Policy | None = None,
        latency: float = 0.0,
        port: int = 0,
        refuse_response_format: bool = False,
    ) -> None:
        self.policy = policy or POLICIES["hash"](0.5)
        self.latency = latency
        # An endpoint without structured outputs: a request carrying response_format gets a 400.
        self.refuse_response_format = refuse_response_format
        self.auth: list[str] = []  # the Authorization header of every request
        self.script: deque[Reply] = deque()
        self.requests: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0  # most requests being answered at the same time (concurrency checks)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real API
            disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(
                        404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                    )
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._send(
                        400, {"error": {"message": "request body is not JSON", "type": "bad_request"}}
                    )
                with outer._lock:
                    outer.auth.append(self.headers.get("Authorization") or "")
                if outer.refuse_response_format and "response_format" in body:
                    with outer._lock:
                        outer.requests.append(body)
                    msg = "response_format is not supported by this server"
                    return self._send(400, {"error": {"message": msg, "type": "invalid_request_error"}})
                reply = outer._next(body)
                try:
                    time.sleep(outer.latency + reply.delay)
                finally:
                    with outer._lock:
                        outer.inflight -= 1
                if reply.raw is not None:
                    return self._send(reply.status, reply.raw, reply.headers, reply.content_type)
                if reply.status != 200:
                    text = f"scripted HTTP {reply.status}"
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    if reply.echo_key:
                        text += f" for credentials {self.headers.get('Authorization')}"
                    elif reply.echo_prefix is not None:
                        text += f" for key {token[:reply.echo_prefix]}..."
                    err = {"error": {"message": text, "type": "scripted"}}
                    return self._send(reply.status, err, reply.headers)
                prompt_text = " ".join(m.get("content") or "" for m in body.get("messages", []))
                done = _completion(body, reply.content, prompt_text, reply.finish_reason)
                done["choices"][0]["message"].update(reply.message_extra)
                if reply.usage is None:
                    del done["usage"]
                elif reply.usage != "auto":
                    done["usage"] = reply.usage
                self._send(200, done, reply.headers)

            def _send(
                self,
                status: int,
                payload: dict | str,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # 64 concurrent connects must not overflow the listen backlog

        self._server = Server(("127.0.0.1", port), Handler)

    def _next(self, body: dict) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            scripted = self.script.popleft() if self.script else None
        if scripted is not None:
            return scripted
        try:
            out = self.policy(body)
        except Exception as err:  # a policy bug must surface, not hang: a non-retryable 400 naming it
            traceback.print_exc()
            msg = {
                "error": {"message": f"policy failed: {type(err).__name__}: {err}", "type": "policy_error"}
            }
            return Reply(status=400, raw=json.dumps(msg))
        return out if isinstance(out, Reply) else Reply(content=out)

    def push(self, *replies: Reply | str) -> None:
        """Queue replies served before the policy, in order (a ``str`` is a 200 with that content)."""
        with self._lock:
            self.script.extend(r if isinstance(r, Reply) else Reply(content=r) for r in replies)


@contextmanager
def serve(policy: Policy | None = None, latency: float = 0.0) -> Iterator[JudgeServer]:
    with JudgeServer(policy, latency) as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--policy", choices=sorted(POLICIES), default="keyword")
    ap.add_argument(
        "--threshold", type=float, default=0.5, help="keyword policy: share of content words needed"
    )
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    args = ap.parse_args(argv)
    server = JudgeServer(POLICIES[args.policy](args.threshold), latency=args.latency, port=args.port)
    return serve_until_stopped(server, f"judge server ({args.policy})")


def serve_until_stopped(server: object, name: str) -> int:
    """Serve in the foreground (the scripts' ``main``) until Ctrl-C or ``kill PID``; print the request count."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # `kill PID` stops it as cleanly as Ctrl-C

    print(f"{name} on {server.url}", flush=True)  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_term)
    try:
        server._server.serve_forever(poll_interval=0.2)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()  # type: ignore[attr-defined]
        print(f"served {server.count} requests", flush=True)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
