"""A SQLite cache of judge replies, so a rerun or a resumed run never pays twice for the same verdict.

The key is the sha256 of the endpoint (base URL), the model name, the exact request messages and the
sampling parameters; the value is the reply text plus the token usage the server reported. Only replies that
parsed are stored (the judge decides), always under the key of the *first* request of a verdict's
conversation (a reply obtained by a re-ask included), so a malformed reply is asked again next time instead
of being replayed forever, and a verdict that needed a re-ask costs nothing on a rerun.

One connection is shared; every read and write happens in the caller's thread (the judge calls it from its
event loop thread), and a lock keeps it safe if a second thread ever uses the same object. WAL mode and a
busy timeout let two processes share one file, and the ``leases`` table lets them share the work: a
process about to pay for a request nobody answered yet takes a lease on its key, and the others wait for the
reply instead of paying for it again (see :mod:`rgsd.judges.lease`).

A file that is not a SQLite database (or is damaged) is refused at open with a ``ValueError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
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
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
)
"""
# Only counts SQLite can store; a server's garbage usage never reaches the file (OverflowError at 2**63).
_MAX_COUNT = 2**31 - 1


@dataclass
class CachedReply:
    reply: str
    prompt_tokens: int
    completion_tokens: int
    key: str = ""


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


def _count(value: int) -> int:
    return value if isinstance(value, int) and 0 <= value <= _MAX_COUNT else 0


class JudgeCache:
    """Persistent map from :func:`cache_key` to the judge's raw reply and usage."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
            with self._lock:
                self._set_up()
        except sqlite3.Error as err:
            raise ValueError(
                f"judge cache {self.path}: not a usable SQLite judge cache ({err}); move the file away or "
                "give another --judge-cache"
            ) from None

    def _set_up(self) -> None:
        # Switching a new file to WAL takes an exclusive lock, and SQLite may answer "database is locked" at
        # once instead of waiting when another process opens the same new file that moment (two evals started
        # together): that is no broken file, so it is tried again for up to the connection's 30 s.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(_SCHEMA)
                # Reads a page of every table: a truncated or overwritten file fails here, not mid-run.
                for table in ("replies", "leases"):
                    self._conn.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()
                self._conn.commit()
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                self._conn.rollback()
                time.sleep(0.05)

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT reply, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return CachedReply(*row, key=key) if row else None

    def put(
        self, key: str, model: str, reply: str, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies (key, model, reply, prompt_tokens, completion_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, model, reply, _count(prompt_tokens), _count(completion_tokens)),
            )
            self._conn.execute("DELETE FROM leases WHERE key = ?", (key,))  # answered: nobody need wait
            # Commit per write: a run killed by a budget stop or Ctrl-C keeps everything it paid for.
            self._conn.commit()

    def take_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Lease ``key`` to ``owner`` for ``ttl`` seconds unless another owner holds a live lease on it."""
        now = time.time()
        with self._lock:
            # One statement: SQLite runs it atomically, so two processes cannot both take a free lease.
            self._conn.execute(
                "INSERT INTO leases (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "owner = excluded.owner, expires = excluded.expires WHERE leases.expires < ? OR leases.owner = ?",
                (key, owner, now + ttl, now, owner),
            )
            self._conn.commit()
            row = self._conn.execute("SELECT owner FROM leases WHERE key = ?", (key,)).fetchone()
        return bool(row) and row[0] == owner

    def release_leases(self, keys: list[str], owner: str) -> None:
        """Drop ``owner``'s leases on ``keys`` (a failed request: another process may try it now)."""
        with self._lock:
            self._conn.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(k, owner) for k in keys])
            self._conn.commit()

    def renew_leases(self, owner: str, ttl: float) -> None:
        """Extend every lease ``owner`` holds to ``ttl`` seconds from now (the holder is alive)."""
        with self._lock:
            self._conn.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + ttl, owner))
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
