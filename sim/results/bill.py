"""bill.parquet: per account, model id, tier and hour (of the attempt's end), the tokens billed
of each kind, the requests served and their cost. Refused attempts cost nothing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

HOUR_S = 3600.0
KEYS = ("account", "model", "tier")
COLUMNS = (
    *KEYS,
    "status",
    "finished_s",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_usd",
)


def bill(requests: pa.Table) -> pa.Table:
    served = requests.filter(pc.equal(requests["status"], 200))
    hour = pc.floor(pc.divide(served["finished_s"], HOUR_S)).cast(pa.int64())
    uncached = pc.subtract(served["prompt_tokens"], served["cached_tokens"])
    table = pa.table(
        {
            "account": served["account"],
            "model": served["model"],
            "tier": served["tier"],
            "hour": hour,
            "input_tokens": uncached,
            "cached_input_tokens": served["cached_tokens"],
            "output_tokens": served["completion_tokens"],
            "cost_usd": served["cost_usd"],
        }
    )
    keys = [*KEYS, "hour"]
    summed = ["input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"]
    grouped = table.group_by(keys, use_threads=False).aggregate(
        [(name, "sum") for name in summed] + [("account", "count")]
    )
    # Label columns come dictionary-encoded; bill.parquet holds them as plain strings.
    columns = {key: grouped[key].cast(pa.string()) for key in KEYS} | {"hour": grouped["hour"]}
    columns["requests"] = grouped["account_count"]
    columns |= {name: grouped[f"{name}_sum"] for name in summed}
    return pa.table(columns).sort_by([(key, "ascending") for key in keys])
