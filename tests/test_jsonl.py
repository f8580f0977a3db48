"""rgsd.jsonl.read_jsonl: line numbers kept, blank lines skipped, a malformed line named."""

from __future__ import annotations

import pytest

from rgsd.jsonl import read_jsonl


def test_read_jsonl_keeps_line_numbers_and_names_a_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n\n[2]\n', encoding="utf-8")
    assert read_jsonl(path) == [(1, {"a": 1}), (3, [2])]
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"m\.jsonl:2: record: malformed JSON"):
        read_jsonl(path)
