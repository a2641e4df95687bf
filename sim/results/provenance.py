"""Where results came from, kept beside them: the question the scenario asks (its header
comment), the scenario file and overrides, the seed, the command, the capsim version and its
build (pure Python, or compiled: setup.py).

A run folder holds `run.json`; an experiment folder (sweep, compare, plan) holds
`command.json`. `capsim report` shows them, so a report says what was asked and how to redo it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim import __version__
from sim.scenario import Scenario

RUN_INFO = "run.json"
COMMAND_INFO = "command.json"


@dataclass(frozen=True)
class Origin:
    """What a run was made from: the scenario file as given and the overrides applied to it
    (`dotted.path=value`, the seed included), and the command line when one started it."""

    scenario_file: str
    overrides: tuple[str, ...] = ()
    command: str = ""


def scenario_header(text: str) -> str:
    """The leading comment block of a scenario YAML, `#` marks removed: the question it asks."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(lines).strip("\n")


def command_line() -> str:
    """This process's command line as a `capsim ...` command (however capsim was started)."""
    return shlex.join(["capsim", *sys.argv[1:]])


def build() -> str:
    """Whether the simulation's modules run compiled by mypyc (setup.py), "compiled", or as
    pure Python, "pure": a run's speed depends on it."""
    from sim import clock

    return "pure" if clock.__file__.endswith(".py") else "compiled"


def run_info(scenario: Scenario, origin: Origin | None, out_dir: Path) -> dict[str, Any]:
    """The contents of a run's `run.json`. Without an origin (a scenario built in Python) the
    question and command are empty; without a command, the `capsim run` that redoes the run."""
    question, command = "", ""
    if origin is not None:
        try:
            question = scenario_header(Path(origin.scenario_file).read_text())
        except OSError:
            question = ""  # the file moved since it was loaded: the run itself is unaffected
        redo = ["capsim", "run", origin.scenario_file, "--out", str(out_dir)]
        for override in origin.overrides:
            redo += ["--set", override]
        command = origin.command or shlex.join(redo)
    return {
        "capsim_version": __version__,
        "build": build(),
        "question": question,
        "scenario_file": origin.scenario_file if origin else "",
        "overrides": list(origin.overrides) if origin else [],
        "seed": scenario.seed,
        "command": command,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written under a temporary name and renamed, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_command_info(folder: Path) -> None:
    """An experiment folder's `command.json`: the capsim version and the command that made it."""
    write_json(folder / COMMAND_INFO, {"capsim_version": __version__, "command": command_line()})
