"""The judge's API key: refused when it cannot be sent as is, and redacted wherever a server echoes it.

A key read with ``$(cat keyfile)`` or pasted from a web page often carries a newline or spaces; sent as is,
it fails as a "Connection error" far from its cause. :func:`key_problem` names the problem (never the key)
so the judge can refuse it at construction.

Redaction rule (:func:`redact`): every occurrence of the whole key is replaced, however short it is, and so
is every echoed *prefix* of the key of at least :data:`MIN_PREFIX` characters (servers and proxies often
quote a truncated key, ``sk-abc123...``). A prefix shorter than that is too common a string to hide
without mangling the text, and too short to be worth much to whoever reads it.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from rgsd.judges.errors import JudgeConfigError

MIN_PREFIX = 8
REDACTED = "[redacted]"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _is_loopback(url: str | None) -> bool:
    host = urlparse(url).hostname if url else None
    return bool(host) and (host in _LOOPBACK or host.startswith("127."))


def read_key(env: str, base_url: str | None) -> str:
    """The API key in the environment variable ``env`` ('' for a loopback server without one).

    Raises :class:`JudgeConfigError` naming ``env`` (never the key) when it is missing for a remote endpoint
    or unusable as is (see :func:`key_problem`).
    """
    key = os.environ.get(env) or ""
    problem = key_problem(key) if key else None
    if problem:
        raise JudgeConfigError(f"the API key in the environment variable {env} {problem}")
    if not key and not _is_loopback(base_url):
        raise JudgeConfigError(
            f"The judge needs an API key in the environment variable {env} (base URL: {base_url or 'the OpenAI default'})."
        )
    return key


def key_problem(key: str) -> str | None:
    """What makes ``key`` unusable in an HTTP header, or ``None``; the text never quotes the key."""
    if key != key.strip():
        return "starts or ends with whitespace or a newline (e.g. from $(cat keyfile)); strip it"
    bad = [c for c in key if not (" " < c < "\x7f")]
    if bad:
        what = "whitespace" if all(c.isspace() for c in bad) else "a control or non-ASCII character"
        return f"contains {what}; an API key is printable ASCII without spaces"
    return None


def redact(text: str, key: str) -> str:
    """``text`` with ``key`` and every echoed prefix of it of >= :data:`MIN_PREFIX` characters replaced."""
    if not isinstance(text, str) or not key:
        return text
    text = text.replace(key, REDACTED)
    if len(key) <= MIN_PREFIX:
        return text
    head, out, i = key[:MIN_PREFIX], [], 0
    while (j := text.find(head, i)) >= 0:
        end = j + MIN_PREFIX
        while end < len(text) and end - j < len(key) and text[end] == key[end - j]:
            end += 1  # the longest run of the key's leading characters echoed here
        out += [text[i:j], REDACTED]
        i = end
    return "".join(out) + text[i:]
