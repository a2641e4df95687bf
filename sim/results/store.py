"""Writes a run's results: into a temporary folder beside the target, then moved into place,
so a reader never sees half a run."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import InputError
from sim.results.yaml_text import yaml_text
from sim.scenario import Scenario

MARKER = ".capsim-run"  # written by capsim into every run folder: only such a folder is replaced
_TMP = ".capsim-tmp-"  # .<name>.capsim-tmp-<pid>-<random>: a run being written, beside its target
_OLD = ".capsim-old"  # .<name>.capsim-old: an earlier run set aside while the new one moves in


def folder_name(name: str) -> str:
    """A scenario name as a results folder name: letters, digits, `.`, `_` and `-` only, not
    starting with a dot, so that no name (`../x`, `/etc`, `a/b`) escapes `results/`."""
    safe = re.sub(r"(?:[^A-Za-z0-9._-]|\.\.)+", "-", name)
    safe = re.sub(r"-+", "-", safe).strip("-.")
    return safe[:120] or "run"


class RunFolder:
    """A run's results being written: a temporary folder beside the target, made before the
    simulation (so an unwritable target is found before the work, and records can stream into
    it), then moved into place whole by `commit`, or removed by `discard`.

    A kill at any moment leaves the earlier complete run or the new one at the target: the swap
    is one atomic exchange of names where the system has it (Linux), else two renames that the
    next run completes (`_recover`). The next run into the same parent also removes temporary
    folders left by killed runs (only capsim's own names, and only of processes that are gone).
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        check_replaceable(self.out_dir)
        try:
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            _recover(self.out_dir)
            _remove_leftovers(self.out_dir.parent)
            prefix = f".{self.out_dir.name}{_TMP}{os.getpid()}-"
            self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.out_dir.parent))
            umask = os.umask(0)
            os.umask(umask)
            self.tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a results folder is shared
            (self.tmp / MARKER).write_text('{"written_by": "capsim"}\n')
        except OSError as error:
            raise InputError(
                f"{self.out_dir}: cannot write the results there: {error.strerror}"
            ) from None

    def commit(self) -> Path:
        """Move the finished run into place, replacing an earlier run whole."""
        if not self.out_dir.exists():
            self.tmp.rename(self.out_dir)
        elif _exchange(self.tmp, self.out_dir):
            shutil.rmtree(self.tmp, ignore_errors=True)  # now the earlier run
        else:
            old = _set_aside(self.out_dir)
            shutil.rmtree(old, ignore_errors=True)
            self.out_dir.rename(old)
            self.tmp.rename(self.out_dir)
            shutil.rmtree(old, ignore_errors=True)
        return self.out_dir

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_run(
    out_dir: Path | RunFolder,
    scenario: Scenario,
    requests: pa.Table | None,
    timeseries: pa.Table,
    cache_hits: pa.Table,
    summary: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write every file of a run into its folder (made here from a path, or made before the
    simulation) and move it into place; `extra(tmp_dir)` adds more (plots). `requests` is None
    when the records were streamed into the folder already."""
    folder = out_dir if isinstance(out_dir, RunFolder) else RunFolder(out_dir)
    tmp = folder.tmp
    try:
        if requests is not None:
            pq.write_table(requests, tmp / "requests.parquet")
        pq.write_table(timeseries, tmp / "timeseries.parquet")
        pq.write_table(cache_hits, tmp / "cache_hits.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        (tmp / "scenario.resolved.yaml").write_text(resolved_yaml(scenario))
        if extra is not None:
            extra(tmp)
        return folder.commit()
    except OSError as error:
        folder.discard()
        raise InputError(
            f"{folder.out_dir}: cannot write the results: {error.strerror or error}"
        ) from None
    except BaseException:
        folder.discard()
        raise


def check_replaceable(out_dir: Path) -> None:
    """InputError unless `out_dir` is absent, empty or a folder capsim wrote (it holds the
    marker file): writing a run replaces the folder and all it holds, which must not be
    someone's other files (`--out .`, or a folder that merely holds a summary.json)."""
    if out_dir.exists() and not out_dir.is_dir():
        problem = "is a file, and a run's results are a folder"
    elif out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        problem = (
            f"holds files but is not a capsim run folder (no {MARKER} file, which capsim writes "
            "in every run folder), and writing the run would replace them all"
        )
    else:
        return
    raise InputError(f"{out_dir}: {problem}; give a new or empty folder, or an earlier run's")


def _set_aside(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}{_OLD}")


def _recover(out_dir: Path) -> None:
    """Finish a replace that a kill interrupted between its two renames: the earlier run, set
    aside, goes back in place."""
    old = _set_aside(out_dir)
    if not out_dir.exists() and (old / MARKER).is_file():
        old.rename(out_dir)


def _remove_leftovers(parent: Path) -> None:
    """Remove capsim's temporary folders in `parent` whose process is gone."""
    for path in parent.glob(f".*{_TMP}*"):
        pid = re.fullmatch(rf"\..*{re.escape(_TMP)}(\d+)-[^/]*", path.name)
        if pid and path.is_dir() and not _alive(int(pid.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    for path in parent.glob(f".*{_OLD}"):
        if (path / MARKER).is_file() and parent.joinpath(path.name[1 : -len(_OLD)]).exists():
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), str(b))


def resolved_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data with every default filled in, derived ones as used."""
    data = scenario.model_dump(mode="json", by_alias=True)
    data["sample_interval_s"] = scenario.sample_period_s
    for model_id, model in scenario.models.items():
        for pool_name, pool in model.pools.items():
            if pool.slot_model:  # a slot model caches nothing: written as used, it reloads
                data["models"][model_id]["pools"][pool_name]["prefix_caching"] = False
    for i, source in enumerate(scenario.traffic):
        if scenario.models[source.model].is_fast:  # its requests have tier fast, which no
            del data["traffic"][i]["tier_mix"]  # tier_mix states: left out, it reloads
    return data


def resolved_yaml(scenario: Scenario) -> str:
    header = "# The scenario with every default filled in, as capsim ran it.\n"
    return header + yaml_text(resolved_data(scenario))
