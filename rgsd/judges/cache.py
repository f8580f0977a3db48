"""A SQLite cache of judge replies, so a rerun or a resumed run never pays twice for the same verdict.

The key is the sha256 of the endpoint (base URL), the model name, the exact request messages and the
sampling parameters; the value is the reply text plus the token usage the server reported. Only replies that
parsed are stored (the judge decides), always under the key of the *first* request of a verdict's
conversation (a reply obtained by a re-ask included), so a malformed reply is asked again next time instead
of being replayed forever, and a verdict that needed a re-ask costs nothing on a rerun.

One connection is shared; every read and write happens in the caller's thread (the judge calls it from its
event loop thread), and a lock keeps it safe if a second thread ever uses the same object. WAL mode and a
busy timeout let two processes share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    reply TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


@dataclass
class CachedReply:
    reply: str
    prompt_tokens: int
    completion_tokens: int


def cache_key(
    model: str, messages: list[dict[str, str]], params: dict[str, Any], base_url: str | None = None
) -> str:
    """sha256 over a canonical JSON rendering of (endpoint, model, messages, sampling parameters).

    Two endpoints serving the same model name are different judges, so ``base_url`` (``None`` = the
    provider's default, trailing ``/`` ignored) is part of the key.
    """
    endpoint = base_url.rstrip("/") if base_url else "default"
    blob = json.dumps(
        {"endpoint": endpoint, "model": model, "messages": messages, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    """Persistent map from :func:`cache_key` to the judge's raw reply and usage."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT reply, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(
        self, key: str, model: str, reply: str, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies (key, model, reply, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, model, reply, int(prompt_tokens), int(completion_tokens)),
            )
            # Commit per write: a run killed by a budget stop or Ctrl-C keeps everything it paid for.
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
