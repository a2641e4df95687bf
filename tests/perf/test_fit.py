"""The committed calibration reproduces the measured kernel times it was fitted to."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import pytest

from sim.perf import fit
from sim.perf.calibration import get_calibration
from sim.perf.catalog import gpu_names

DATA = Path(os.environ.get("CAPSIM_DATA", Path(__file__).parents[3] / "shared" / "data"))
# Stated in docs/performance-model.md: every fitted op, GPU and source is within these.
MAX_MEDIAN_ERROR = 0.25
MAX_P90_ERROR = 0.55
MAX_FAMILY_MEDIAN_ERROR = 0.15

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no profiling data at {DATA}")


@pytest.fixture(scope="module")
def rows() -> list[fit.Row]:
    return fit.load_rows(DATA)


@pytest.fixture(scope="module")
def calibrations() -> dict:
    return {name: get_calibration(name) for name in gpu_names()}


def test_every_fitted_op_is_within_the_stated_error(rows, calibrations) -> None:
    for error in fit.fit_errors(rows, calibrations):
        if error.fitted:
            assert error.median_abs_rel_error <= MAX_MEDIAN_ERROR, error
            assert error.p90_abs_rel_error <= MAX_P90_ERROR, error


def test_each_family_is_accurate_overall(rows, calibrations) -> None:
    for family in fit.FAMILIES:
        errors = sorted(
            abs(row.predict(calibrations[row.gpu]) / row.measured_s - 1)
            for row in rows
            if row.family == family.name and row.fitted
        )
        assert errors[len(errors) // 2] <= MAX_FAMILY_MEDIAN_ERROR, family.name


def test_committed_errors_are_current(rows, calibrations) -> None:
    text = resources.files("sim.perf").joinpath("data", "calibration.json").read_text()
    committed = {
        (e["family"], e["op"], e["gpu"], e["source"], e["fitted"]): e
        for e in json.loads(text)["fit_errors"]
    }
    for error in fit.fit_errors(rows, calibrations):
        recorded = committed[(error.family, error.op, error.gpu, error.source, error.fitted)]
        assert recorded["rows"] == error.rows
        assert recorded["median_abs_rel_error"] == pytest.approx(
            error.median_abs_rel_error, abs=1e-3
        )


def test_refitting_reproduces_the_committed_calibration(rows, calibrations) -> None:
    for name, refitted in fit.fit(rows).items():
        committed = calibrations[name]
        for field, value in refitted:
            if isinstance(value, float):
                assert value == pytest.approx(getattr(committed, field), rel=0.02), (name, field)
