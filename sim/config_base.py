"""Shared pydantic base for every scenario section: unknown keys are errors, values are frozen,
and no number is infinite or NaN (`.inf`, `.nan` in YAML): no setting of capsim means anything
with one, and they would surface as hangs or nonsense (a NaN mean gives -2^63-token prompts)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )
