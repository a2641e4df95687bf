"""The front door's budget check (402) and the bill of every served attempt.

Spend is per account, summed over its model ids and tiers, from the cost of each served
attempt at its end. From the first attempt that arrives after spend has reached the budget,
every attempt gets 402 until the budget period ends (PLATFORM.md: "until the month resets").
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sim.gateway.billing import PriceBook
from sim.gateway.config import Billing
from sim.request import Request
from sim.scenario import Scenario
from sim.status import STATUS_BUDGET, STATUS_OK


class BudgetPeriods:
    """Where budget periods end, in simulated seconds: calendar months (from the calendar
    time of second 0) or a fixed duration."""

    def __init__(self, billing: Billing) -> None:
        self._start = billing.start_utc
        period = billing.budget_period
        self._period_s = None if period == "month" else float(period)

    def end_after(self, now_s: float) -> float:
        """The end of the period holding `now_s`."""
        if self._period_s is not None:
            return (math.floor(now_s / self._period_s) + 1) * self._period_s
        at = self._start + timedelta(seconds=now_s)
        year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
        end = datetime(year, month, 1, tzinfo=at.tzinfo)
        return (end - self._start).total_seconds()


class AccountSpend:
    __slots__ = ("budget_usd", "period_end_s", "spent_usd")

    def __init__(self, budget_usd: float, spent_usd: float, period_end_s: float) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.period_end_s = period_end_s


class BudgetCheck:
    def __init__(self, scenario: Scenario, prices: PriceBook) -> None:
        self.prices = prices
        self._periods = BudgetPeriods(scenario.billing)
        first_end_s = self._periods.end_after(0.0)
        self.accounts: dict[str, AccountSpend] = {}
        for account in scenario.accounts:
            budget = account.monthly_budget_usd
            if budget is None:
                budget = scenario.spend_tiers[account.spend_tier].monthly_budget_usd
            self.accounts[account.name] = AccountSpend(
                math.inf if budget is None else budget, account.spent_usd_at_start, first_end_s
            )

    def admit(self, request: Request, now_s: float) -> int:
        spend = self.accounts[request.account]
        if now_s >= spend.period_end_s:
            spend.spent_usd = 0.0
            spend.period_end_s = self._periods.end_after(now_s)
        return STATUS_BUDGET if spend.spent_usd >= spend.budget_usd else 0

    def settle(self, request: Request, now_s: float) -> None:
        """Bill a served attempt (refused ones cost nothing) and add it to the account's spend
        in the period the attempt ends in."""
        if request.status != STATUS_OK:
            return
        cost = self.prices.cost_usd(
            request.model,
            request.tier,
            request.prompt_tokens,
            request.cached_tokens,
            request.output_tokens,
        )
        request.cost_usd = cost
        spend = self.accounts[request.account]
        if now_s >= spend.period_end_s:
            spend.spent_usd = 0.0
            spend.period_end_s = self._periods.end_after(now_s)
        spend.spent_usd += cost
