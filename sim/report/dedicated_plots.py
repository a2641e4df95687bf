"""Plot of `capsim dedicated` (dedicated.parquet): monthly cost against the account's traffic."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from sim.report.style import legend, new_figure, plot_function


@plot_function
def serverless_vs_dedicated(table: pa.Table, break_even: float | None) -> Figure:
    """Serverless (a line through 0: per-token prices are flat) and dedicated (a staircase:
    whole replicas) monthly cost against the traffic multiplier, the break-even marked.

    Dedicated is known at the sized levels (dots); each level's cost is held up to the next one,
    and where the next costs more, a shaded box shows where the step up lies (somewhere between
    the two levels: with more traffic never needing fewer replicas)."""
    data = table.sort_by("traffic_multiplier").to_pydict()
    x = np.array(data["traffic_multiplier"], dtype=float)
    dedicated = np.array(
        [np.nan if v is None else v for v in data["dedicated_usd_per_month"]], dtype=float
    )
    serverless = np.array(data["serverless_usd_per_month"], dtype=float)
    fig, ax = new_figure(figsize=(8, 4.5))
    per_multiple = serverless[-1] / x[-1]
    ends = np.array([0.0, x.max()])
    ax.plot(ends, ends * per_multiple, label="serverless (the account's bill)")
    line = ax.step(
        np.concatenate(([0.0], x)),
        np.concatenate(([dedicated[0]], dedicated)),
        where="post",
        label="dedicated (fewest replicas meeting the SLOs)",
    )[0]
    ax.plot(x, dedicated, "o", color=line.get_color(), markersize=4)
    for n, i in enumerate(np.flatnonzero(dedicated[1:] > dedicated[:-1])):
        ax.fill_between(
            x[i : i + 2], dedicated[i], dedicated[i + 1], color=line.get_color(), alpha=0.12,
            linewidth=0, label="dedicated: a step up somewhere in here" if n == 0 else None,
        )  # fmt: skip
    if break_even is not None:
        at = break_even * per_multiple
        ax.axvline(break_even, linestyle="--", color="grey", linewidth=1)
        ax.plot([break_even], [at], "D", color="black", label=f"break-even: x{break_even:.3g}")
    ax.set_xlabel("the account's traffic (multiple of the scenario's)")
    ax.set_ylabel("cost per month (USD, 730 h)")
    ax.set_title("Serverless or dedicated: monthly cost against traffic")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    legend(ax)
    return fig
