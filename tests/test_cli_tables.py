"""The CLI's per-account tables: every row for a few accounts, the largest few for a fleet."""

from __future__ import annotations

from typing import Any

from sim import cli


def _accounts(n: int) -> dict[str, Any]:
    group = {
        "attempts_by_status": {"200": 1},
        "logical_requests": 1,
        "served": 1,
        "gave_up": 0,
        "final_status": {"200": 1},
        "unfinished": 0,
    }
    return {
        "accounts": {
            f"acct-{i:04d}": {"m": {"standard": {**group, "attempts": 10 * i + 5}}}
            for i in range(n)
        },
        "sessions": {
            f"chat-{i:04d}": {"started": i, "completed": 0, "abandoned": 0} for i in range(n)
        },
    }


def _printed(summary: dict[str, Any]) -> str:
    with cli.out.capture() as captured:
        cli._print_accounts(summary)
    return captured.get()


def test_a_few_accounts_are_all_shown_in_their_order() -> None:
    text = _printed(_accounts(3))
    assert [text.index(f"acct-{i:04d}") for i in range(3)] == sorted(
        text.index(f"acct-{i:04d}") for i in range(3)
    )
    assert "largest" not in text


def test_a_fleet_shows_its_largest_accounts_and_says_where_the_rest_are() -> None:
    n = 2 * cli.MAX_ACCOUNT_ROWS + 7
    text = _printed(_accounts(n))
    largest = range(n - 1, n - 1 - cli.MAX_ACCOUNT_ROWS, -1)
    assert all(f"acct-{i:04d}" in text for i in largest)
    assert not any(f"acct-{i:04d}" in text for i in range(n - cli.MAX_ACCOUNT_ROWS))
    positions = [text.index(f"acct-{i:04d}") for i in largest]
    assert positions == sorted(positions)  # largest first
    assert f"the {cli.MAX_ACCOUNT_ROWS} largest of {n}" in text
    assert "summary.json's accounts" in text and "summary.json's sessions" in text
    assert not any(f"chat-{i:04d} " in text for i in range(n - cli.MAX_ACCOUNT_ROWS))
