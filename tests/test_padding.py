"""The one padding helper: hand-written expected batches for both sides; the dtype names."""

from __future__ import annotations

import pytest
import torch

from rgsd.method.padding import pad_batch
from rgsd.models import torch_dtype


def test_right_padding_keeps_natural_positions():
    ids, mask = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]


def test_left_padding_ends_every_row_in_the_same_column():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=9, side="left", width=4)
    assert ids.tolist() == [[9, 5, 6, 7], [9, 9, 9, 8]]
    assert mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="longer than width"):
        pad_batch([[1, 2, 3]], 0, width=2)
    with pytest.raises(ValueError, match="side"):
        pad_batch([[1]], 0, side="middle")


def test_dtype_names():
    assert torch_dtype("bf16") is torch_dtype("bfloat16") is torch.bfloat16
    assert torch_dtype("fp32") is torch.float32 and torch_dtype(torch.float16) is torch.float16
    assert torch_dtype("auto") is (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    with pytest.raises(ValueError, match="unknown dtype"):
        torch_dtype("fp8")
