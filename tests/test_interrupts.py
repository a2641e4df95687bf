"""Kills at any moment: the previous complete results or the new ones stay at the path, the
next run cleans what a killed one left, SIGTERM behaves as Ctrl-C, and sweep workers end with
their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")
LONG = ("--set", "duration_s=2h", "--no-plots", "-q")  # minutes of work: killed long before


def _capsim(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sim", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(condition: Callable[[], bool], limit_s: float = 120.0) -> None:
    """Wait for a condition of the processes under test (a bound on a hang, not a speed test)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def _temporary(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".capsim-tmp-" in p.name]


def _earlier_run(tmp_path: Path) -> tuple[Path, str]:
    short = ("--set", "duration_s=60", "--set", "warmup_s=0", "-q", "--no-plots")
    done = subprocess.run(
        [sys.executable, "-m", "sim", "run", QUICKSTART, "--out", "run", *short],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return tmp_path / "run", (tmp_path / "run" / "summary.json").read_text()


def test_a_killed_run_leaves_the_earlier_results_and_the_next_run_cleans_up(
    tmp_path: Path,
) -> None:
    out, summary = _earlier_run(tmp_path)
    run = _capsim("run", QUICKSTART, "--out", "run", *LONG, cwd=tmp_path)
    _until(lambda: bool(_temporary(tmp_path)))
    run.kill()
    run.wait()
    assert (out / "summary.json").read_text() == summary  # the earlier run, whole
    assert _temporary(tmp_path)  # what the kill left...
    _earlier_run(tmp_path)
    assert not _temporary(tmp_path)  # ...the next run removes


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path: Path) -> None:
    out, summary = _earlier_run(tmp_path)
    run = _capsim("run", QUICKSTART, "--out", "run", *LONG, cwd=tmp_path)
    _until(lambda: bool(_temporary(tmp_path)))
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in stderr  # as for Ctrl-C
    assert not _temporary(tmp_path) and (out / "summary.json").read_text() == summary


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue  # the process ended while we looked
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sweep_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    sweep = _capsim(
        "sweep", QUICKSTART, "--seeds", "0-1", "--workers", "2", "--out", "s", "-q",
        "--grid", "duration_s=2h",
        cwd=tmp_path,
    )  # fmt: skip
    workers: list[int] = []

    def running() -> bool:
        workers[:] = [p for p in _children(sweep.pid) if "resource_tracker" not in _cmd(p)]
        return len(workers) >= 2

    _until(running)
    sweep.kill()  # SIGKILL: no chance to stop them itself
    sweep.wait()
    _until(lambda: not any(_alive(p) for p in workers), limit_s=30)


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_a_sigterm_to_a_sweep_stops_its_workers(tmp_path: Path) -> None:
    sweep = _capsim(
        "sweep", QUICKSTART, "--seeds", "0-1", "--workers", "2", "--out", "s", "-q",
        "--grid", "duration_s=2h",
        cwd=tmp_path,
    )  # fmt: skip
    workers: list[int] = []

    def running() -> bool:
        workers[:] = [p for p in _children(sweep.pid) if "resource_tracker" not in _cmd(p)]
        folder = tmp_path / "s"
        return len(workers) >= 2 and folder.is_dir() and len(_temporary(folder)) >= 2

    _until(running)
    os.kill(sweep.pid, signal.SIGTERM)
    sweep.communicate(timeout=120)
    assert sweep.returncode != 0
    _until(lambda: not any(_alive(p) for p in workers), limit_s=30)
    assert not _temporary(tmp_path / "s")  # each worker removed its own
