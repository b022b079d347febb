"""Saving matplotlib figures for reports and ``dvc plots`` (atomic, non-interactive backend safe)."""

from __future__ import annotations

from pathlib import Path

from blobhelpers.core.paths import atomic_path

__all__ = ["save_figure", "figure_png"]


def save_figure(fig, path, dpi: int = 72) -> Path:
    """Save *fig* as PNG atomically (for ``dvc plots``) and return the path."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return Path(path)


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (80 dpi, tight), the figure closed."""
    import io as _io

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt  # forgets a pyplot figure; a bare Figure is not registered: a no-op

    plt.close(fig)
    return buf.getvalue()
