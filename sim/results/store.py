"""Writes a run's results: into a temporary folder beside the target, then moved into place,
so a reader never sees half a run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from sim.errors import InputError
from sim.scenario import Scenario

RUN_FILES = ("summary.json", "scenario.resolved.yaml")  # a folder holding either is a run's


def write_run(
    out_dir: Path,
    scenario: Scenario,
    requests: pa.Table,
    timeseries: pa.Table,
    cache_hits: pa.Table,
    summary: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write every file of a run to `out_dir`; `extra(tmp_dir)` adds more (plots). An earlier
    run in `out_dir` is replaced whole."""
    out_dir = out_dir.resolve()
    check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a results folder is shared
    try:
        pq.write_table(requests, tmp / "requests.parquet")
        pq.write_table(timeseries, tmp / "timeseries.parquet")
        pq.write_table(cache_hits, tmp / "cache_hits.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        (tmp / "scenario.resolved.yaml").write_text(resolved_yaml(scenario))
        if extra is not None:
            extra(tmp)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def check_replaceable(out_dir: Path) -> None:
    """InputError unless `out_dir` is absent, empty or an earlier run's folder: writing a run
    replaces the folder and all it holds, which must not be someone's other files (`--out .`)."""
    if out_dir.exists() and not out_dir.is_dir():
        problem = "is a file, and a run's results are a folder"
    elif (
        out_dir.is_dir()
        and any(out_dir.iterdir())
        and not any((out_dir / name).is_file() for name in RUN_FILES)
    ):
        problem = (
            f"holds files but is not a capsim run folder (no {' or '.join(RUN_FILES)}), and "
            "writing the run would replace them all"
        )
    else:
        return
    raise InputError(f"{out_dir}: {problem}; give a new or empty folder, or an earlier run's")


def resolved_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data with every default filled in, derived ones as used."""
    data = scenario.model_dump(mode="json", by_alias=True)
    data["sample_interval_s"] = scenario.sample_period_s
    return data


def resolved_yaml(scenario: Scenario) -> str:
    data = resolved_data(scenario)
    header = "# The scenario with every default filled in, as capsim ran it.\n"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present
    return header + yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=None, width=100
    )
