"""The NaN-aware table comparison that tests use in place of Arrow's `equals`."""

from __future__ import annotations

import pyarrow as pa
from helpers import tables_equal

NAN = float("nan")


def test_tables_with_the_same_nans_are_equal_where_arrow_says_they_differ() -> None:
    a = pa.table({"tpot_s": [0.1, NAN], "tier": ["standard", "batch"]})
    b = pa.table({"tpot_s": [0.1, NAN], "tier": ["standard", "batch"]})
    assert not a.equals(b)
    assert tables_equal(a, b)


def test_a_different_value_null_or_column_makes_tables_differ() -> None:
    a = pa.table({"tpot_s": [0.1, NAN, None]})
    assert not tables_equal(a, pa.table({"tpot_s": [0.2, NAN, None]}))
    assert not tables_equal(a, pa.table({"tpot_s": [0.1, NAN, NAN]}))  # null is not NaN
    assert not tables_equal(a, pa.table({"tpot_s": [0.1, NAN]}))
    assert not tables_equal(a, pa.table({"e2e_s": [0.1, NAN, None]}))
    assert not tables_equal(pa.table({"n": [1, 2]}), pa.table({"n": [1, 3]}))
