"""The plots' common frame: matplotlib on the file-only backend, and a figure's labels, legend and file.

``rgsd compare`` and ``rgsd diagnose`` draw their own series; this is what each figure then shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display); imported here, on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, ax: Any, path: Path, *, xlabel: str, ylabel: str, dpi: int,
                legend_fontsize: float | None = None, grid_alpha: float | None = None) -> None:
    """Label the axes, add the legend (and a grid), write ``path`` and close the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_fontsize)  # None = matplotlib's default size
    if grid_alpha is not None:
        ax.grid(alpha=grid_alpha)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
