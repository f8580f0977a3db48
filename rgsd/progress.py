"""Progress bars of the commands that run long (eval, gap, diagnose, rubrics, compare), all alike.

tqdm on stderr, as ``rgsd eval``'s bars have always been: labelled with the phase, gone when it ends
(``leave=False``), so stdout keeps only the command's result. Library calls show none unless asked
(``progress=True`` or a label).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Progress", "bar", "tracked"]

T = TypeVar("T")
Progress = bool | str  # False = no bar, True = the default label, a string = that label


def bar(progress: Progress, total: int, default: str, unit: str) -> Any:
    """A tqdm bar of ``total`` ``unit`` labelled ``progress`` (a string) or ``default``; None when False."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else default, unit=unit, leave=False)


def tracked(items: Iterable[T], progress: Progress, default: str, unit: str, total: int | None = None) -> Iterator[T]:
    """``items`` with a :func:`bar` advancing one per item (closed when the loop ends or breaks)."""
    pbar = bar(progress, total if total is not None else len(items), default, unit)  # type: ignore[arg-type]
    try:
        for item in items:
            yield item
            if pbar is not None:
                pbar.update(1)
    finally:
        if pbar is not None:
            pbar.close()
