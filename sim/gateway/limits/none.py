"""No token limits: every bucket is bottomless (the request cap still applies)."""

from __future__ import annotations

from typing import Literal

from sim.config_base import StrictModel
from sim.gateway.limits.base import UNLIMITED, LimitPolicy


class NoLimitsConfig(StrictModel):
    policy: Literal["none"]


class NoLimitsPolicy(LimitPolicy):
    name = "none"
    Config = NoLimitsConfig

    def start_tpm(self) -> tuple[float, float, float]:
        return UNLIMITED, UNLIMITED, UNLIMITED
