"""The one look of capsim's plots, and how a Figure becomes a file or an embeddable image.

Figures are made with `matplotlib.figure.Figure`, never through pyplot: no backend is chosen
or needed to draw and save them, none is forced on a notebook (which shows a returned Figure
inline), and nothing stays registered in pyplot's global list of open figures.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, cast

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

DPI = 110
STYLE: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.prop_cycle": cycler(
        color=[
            "#1f77b4",
            "#d62728",
            "#2ca02c",
            "#ff7f0e",
            "#9467bd",
            "#8c564b",
            "#e377c2",
            "#17becf",
        ]
    ),
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "savefig.dpi": DPI,
}
BAND_ALPHA = 0.2  # the shade of a confidence band around its line

P = ParamSpec("P")
PLOT_FUNCTIONS: dict[str, Callable[..., Figure]] = {}  # "module.name": every plot function


@contextmanager
def styled() -> Iterator[None]:
    """capsim's rc settings while a figure's artists are made (they read them on creation)."""
    with mpl.rc_context(cast(Any, STYLE)):  # typed keys: a plain dict is fine
        yield


def plot_function(draw: Callable[P, Figure]) -> Callable[P, Figure]:
    """Decorator of every plot function: draws under `styled()`, and registers it in
    PLOT_FUNCTIONS (the tests check every registered function's axes for labels and units)."""

    @wraps(draw)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with styled():
            return draw(*args, **kwargs)

    PLOT_FUNCTIONS[f"{draw.__module__}.{draw.__qualname__}"] = drawn
    return drawn


def new_figure(nrows: int = 1, ncols: int = 1, **options: Any) -> tuple[Figure, Any]:
    """A Figure with a constrained layout and its axes (one Axes, or an array of them)."""
    fig = Figure(figsize=options.pop("figsize", (10, 4.5)), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=True, **options)


def legend(ax: Axes, **options: Any) -> None:
    """A legend only where something was drawn (a run may measure no requests)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def mean_band(ax: Axes, x: np.ndarray, samples: list[np.ndarray], label: str, **line: Any) -> None:
    """The mean of each x's samples as a line, and its 95% Student-t interval as a band where
    an x has two or more samples (replications)."""
    means = np.array([np.mean(s) if len(s) else np.nan for s in samples])
    (drawn,) = ax.plot(x, means, marker="o", markersize=3, label=label, **line)
    low, high = zip(*(ci95(s) for s in samples), strict=True) if samples else ((), ())
    if any(np.isfinite(v) for v in low):
        ax.fill_between(x, low, high, color=drawn.get_color(), alpha=BAND_ALPHA, linewidth=0)


def ci95(samples: np.ndarray) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of independent samples; NaN with fewer than 2."""
    values = np.asarray(samples, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return (np.nan, np.nan)
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return (values.mean() - half, values.mean() + half)


def save(fig: Figure, path: Path) -> Path:
    """Write the figure (format from the suffix) under a temporary name, then move it in place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=DPI)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG, for a `data:` URI in a self-contained HTML page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
