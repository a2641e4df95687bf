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

    The staircase holds each sized level's cost back to the level below it: with more traffic
    never needing fewer replicas, that is an upper bound between levels and exact at them."""
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
    ax.step(
        np.concatenate(([0.0], x)),
        np.concatenate(([dedicated[0]], dedicated)),
        where="pre",
        label="dedicated (fewest replicas meeting the SLOs)",
    )
    ax.plot(x, dedicated, "o", color=ax.lines[-1].get_color(), markersize=4)
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
