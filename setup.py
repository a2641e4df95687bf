"""capsim installs as pure Python. `CAPSIM_COMPILE=1 pip install .` compiles the simulation's
hot modules with mypyc instead (docs/performance.md: what it buys); the .py files stay the
source of truth and are installed beside the compiled ones.

Compilation is refused for editable installs and in-place builds: a compiled module would sit
next to its .py in the checkout and be imported instead of it, so later edits would silently
not run. If mypyc is missing or compilation fails, the install says so and stays pure Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The modules the event loop runs through. Modules that define pydantic models are left out:
# pydantic cannot read the field annotations of a compiled class (so the routing policies' and
# schedulers' configs live in config modules of their own). An interpreted class cannot
# subclass a compiled one: a base class is compiled with all its subclasses or not at all.
COMPILED_MODULES = [
    "sim/clock.py",
    "sim/engine.py",
    "sim/request.py",
    "sim/rng.py",
    "sim/status.py",
    "sim/work.py",
    "sim/gateway/billing.py",
    "sim/gateway/budget.py",
    "sim/gateway/buckets.py",
    "sim/gateway/gateway.py",
    "sim/gateway/ratelimit.py",
    "sim/gateway/shedding.py",
    "sim/perf/base.py",
    "sim/perf/roofline.py",
    "sim/replica/batch.py",
    "sim/replica/kvcache.py",
    "sim/replica/pool.py",
    "sim/replica/replica.py",
    "sim/replica/schedulers/base.py",
    "sim/replica/schedulers/fcfs.py",
    "sim/replica/schedulers/preemptive_priority.py",
    "sim/replica/schedulers/strict_priority.py",
    "sim/replica/schedulers/weighted_fair.py",
    "sim/replica/slots.py",
    "sim/replica/stretch.py",
    "sim/results/intervals.py",
    "sim/results/limits.py",
    "sim/results/records.py",
    "sim/results/timeseries.py",
    "sim/routing/affinity.py",
    "sim/routing/base.py",
    "sim/routing/cache_aware.py",
    "sim/routing/hashing.py",
    "sim/routing/least_loaded.py",
    "sim/routing/power_of_two.py",
    "sim/routing/prefix_index.py",
    "sim/routing/random.py",
    "sim/routing/round_robin.py",
    "sim/routing/weighted_scorer.py",
    "sim/workload/batch_jobs.py",
    "sim/workload/chains.py",
    "sim/workload/client.py",
    "sim/workload/lognormal.py",
    "sim/workload/open_loop.py",
    "sim/workload/sessions.py",
    "sim/workload/source.py",
    "sim/workload/trace_replay.py",
]


# What mypyc needs to type-check the modules as `mypy` does in development (its pydantic plugin,
# numpy's and simpy's types); installed into the build's environment only when compiling.
COMPILE_REQUIRES = ["mypy>=1.10", "pydantic>=2.6", "numpy>=1.26", "simpy>=4.1"]
COMPILING = os.environ.get("CAPSIM_COMPILE") == "1"


def _say(message: str) -> None:
    print(f"capsim: {message}", file=sys.stderr)


class _BuildExtOrPure(build_ext):
    """A failed compilation leaves the install pure Python rather than failing it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # a missing compiler, a C error: the .py files still work
            _say(f"compilation failed ({error}); installing pure Python")
            for extension in self.extensions:  # a module built without its shared library
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            self.extensions = []


def _compiled_extensions() -> list:
    if not COMPILING:
        return []
    if {"egg_info", "dist_info"} & set(sys.argv):
        return []  # metadata only: nothing to compile (and mypyc's type check takes a minute)
    if {"editable_wheel", "develop", "--inplace", "-i"} & set(sys.argv):
        _say("CAPSIM_COMPILE is ignored for a build into the checkout (compiled modules would")
        _say("shadow edits to the .py files); pure Python. `pip install .` into a venv compiles.")
        return []
    try:
        from mypyc.build import mypycify

        return mypycify(COMPILED_MODULES, opt_level="3")
    except (Exception, SystemExit) as error:  # mypyc missing, or code it refuses to compile
        _say(f"mypyc could not compile ({error or 'type errors above'}); installing pure Python")
        return []


setup(
    ext_modules=_compiled_extensions(),
    cmdclass={"build_ext": _BuildExtOrPure},
    setup_requires=COMPILE_REQUIRES if COMPILING else [],
)
