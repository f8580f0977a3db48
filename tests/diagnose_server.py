"""A scripted OpenAI-compatible server on 127.0.0.1 for the ``rgsd diagnose`` tests (all four judge roles).

Same pattern as ``tests/judge_server.py`` (its own handler and rules, the same
:class:`judge_server.LoopbackServer` serving them): a real threaded HTTP server answering ``POST /v1/chat/completions`` with a chat completion and ``usage``. What it
answers is decided by plain Python rules that read the request the way the judge sees it:

* rubric verdicts (one criterion per request, ``per-criterion`` mode): ``verdict(model, response_tag,
  criterion_tag) -> bool`` where the tags are the ``[[...]]`` marker in the response and the ``{{...}}``
  marker in the criterion text; without markers, :func:`hash_verdict` decides from the request text;
* pairwise requests (``<<reply A>>``): ``pairwise(model, tag_a, tag_b) -> "A" | "B" | "tie" | raw text``;
* taxonomy requests (``<<criterion>>``): ``category(model, response_tag, criterion_tag) -> str``.

``server.requests`` lists every request body; ``server.by_model`` counts them per model name.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from judge_server import LoopbackServer, serve_until_stopped

RESPONSE_TAG = re.compile(r"\[\[([^\]]+)\]\]")
CRITERION_TAG = re.compile(r"\{\{([^}]+)\}\}")


def hash_verdict(text: str) -> bool:
    """Met for about half of all requests, deterministically (for untagged, generated responses)."""
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


@dataclass
class Rules:
    verdict: Callable[[str, str | None, str | None], bool] | None = None
    pairwise: Callable[[str, str | None, str | None], str] | None = None
    category: Callable[[str, str | None, str | None], str] | None = None
    scales: dict[str, dict[str, int]] = field(
        default_factory=lambda: {s: {"A": 4, "B": 4} for s in ("conciseness", "accuracy", "helpfulness")}
    )


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _tag(pattern: re.Pattern, text: str) -> str | None:
    m = pattern.search(text)
    return m.group(1) if m else None


def answer(rules: Rules, body: dict) -> str:
    """The assistant text for one request."""
    model = body.get("model", "")
    user = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
    if "<<reply A>>" in user:
        a = _between(user, "<<reply A>>", "<</reply A>>")
        b = _between(user, "<<reply B>>", "<</reply B>>")
        better = rules.pairwise(model, _tag(RESPONSE_TAG, a), _tag(RESPONSE_TAG, b)) if rules.pairwise else "tie"
        if better not in ("A", "B", "tie"):
            return better  # raw (e.g. malformed) text, scripted by the test
        return json.dumps({"better": better, **rules.scales, "reason": "scripted"})
    if "<<criterion>>" in user:
        resp = _between(user, "<<response>>", "<</response>>")
        crit = _between(user, "<<criterion>>", "<</criterion>>")
        cat = rules.category(model, _tag(RESPONSE_TAG, resp), _tag(CRITERION_TAG, crit)) if rules.category else "other"
        return json.dumps({"category": cat, "reason": "scripted"})
    resp_tag, crit_tag = _tag(RESPONSE_TAG, user), _tag(CRITERION_TAG, user)
    if rules.verdict is not None and resp_tag is not None and crit_tag is not None:
        met = rules.verdict(model, resp_tag, crit_tag)
    else:
        met = hash_verdict(model + "\x00" + user)
    return json.dumps({"explanation": "scripted", "criteria_met": bool(met)})


class DiagnoseServer(LoopbackServer):
    """``with DiagnoseServer(rules) as server: ... server.url ...`` (port 0 = a free port)."""

    def __init__(self, rules: Rules | None = None, port: int = 0) -> None:
        self.rules = rules or Rules()
        self.requests: list[dict] = []
        self.by_model: Counter[str] = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with outer._lock:
                    outer.requests.append(body)
                    outer.by_model[body.get("model", "")] += 1
                try:
                    content, status = answer(outer.rules, body), 200
                except Exception as err:  # a rule bug must surface as a non-retryable error naming it
                    content, status = f"rule failed: {type(err).__name__}: {err}", 400
                if status != 200:
                    payload = {"error": {"message": content, "type": "rule_error"}}
                else:
                    pt = sum(len((m.get("content") or "").split()) for m in body["messages"])
                    ct = len(content.split())
                    payload = {
                        "id": "chatcmpl-diagnose",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", ""),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self._server = Server(("127.0.0.1", port), Handler)


def main() -> int:
    """Serve the default rules (hash verdicts, pairwise ties, category "other") until interrupted."""
    import argparse

    ap = argparse.ArgumentParser(description="scripted judge server for rgsd diagnose dry runs (127.0.0.1)")
    ap.add_argument("--port", type=int, default=8090)
    return serve_until_stopped(DiagnoseServer(port=ap.parse_args().port), "diagnose judge server")


if __name__ == "__main__":
    raise SystemExit(main())
