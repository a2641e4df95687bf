"""Writes benchmarks/fleet-day.yaml: 2,000 accounts of multi-turn chat on a pool of Llama-3.1-8B.

The scenario format lists every account and traffic source explicitly, so the 4,000 entries are
generated. Account sizes follow a Zipf law (a few large customers, a long tail), as on a public API.

    python benchmarks/make_fleet_day.py                      # the committed fleet-day.yaml
    python benchmarks/make_fleet_day.py --replicas 4 --load 1.2 --out /tmp/cal.yaml   # calibration

`--load` is the offered load as a fraction of the pool's saturation (see benchmarks/README.md for
how SATURATION_SESSIONS_PER_S_PER_REPLICA was measured); 0.7 is the benchmark's 70%.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ACCOUNTS = 2000
ACCOUNT_ZIPF_EXPONENT = 1.0  # account i sends a share proportional to 1 / i
USERS_TOTAL = 200_000  # end users behind all keys, split like the traffic
# Session starts per second per replica at which queues start to grow without bound, measured
# with this generator at --replicas 4 (benchmarks/README.md, "Calibrating fleet-day").
SATURATION_SESSIONS_PER_S_PER_REPLICA = 1.0
SPEND_TIERS = ((10, "unlimited"), (50, 4), (200, 3), (800, 2))  # (accounts up to this rank, tier)
# Tokens per session start counted against each limit (prompt, uncached prompt, generated),
# measured on this workload without limits (minutes 10 to 20 of a 20-minute run: 19,794,
# 11,209 and 2,010). An account's use of a limit is its session starts per second x these.
TOKENS_PER_SESSION = (19_800.0, 11_200.0, 2_000.0)
# PLATFORM.md's floors (tokens per minute), and the room an account's own floors leave above
# its expected use: a large customer's limits were raised to fit its traffic (at 1/2.5 = 40%
# use they neither grow nor decay), the long tail keeps the defaults.
DEFAULT_FLOORS_TPM = (3_600_000.0, 900_000.0, 36_000.0)
LIMIT_HEADROOM = 2.5

HEADER = """\
# Reference workload 2 (issue "Speed and scale"), written by benchmarks/make_fleet_day.py: edit that
# script, not this file. {replicas} replicas of Llama-3.1-8B on one H100 each, one simulated hour of
# multi-turn chat sessions from {accounts:,} accounts (Zipf-sized: account i sends a share ~ 1/i),
# session-affinity routing with bounded load, prefix caching, 10% Priority traffic, offered load
# {load:.0%} of the pool's saturation ({sessions_per_s:.2f} session starts per second in all).
# Adaptive rate limits (PLATFORM.md's defaults) by spend tier; the largest accounts have floors
# raised to {headroom:g}x their expected use ({raised} accounts), the others keep the defaults.
#
#   capsim run benchmarks/fleet-day.yaml --no-plots --out benchmarks/out/fleet-day
#   capsim run benchmarks/fleet-day.yaml --no-plots --set duration_s=24h    # the whole day
"""

# One mapping shared by every source through YAML anchors: the chat shape of the platform.
SESSIONS = (
    "{turns: {dist: lognormal, median: 4, sigma: 0.6, max: 30}, "
    "think_time_s: {dist: lognormal, median_s: 20, sigma: 0.6}, "
    "system_prompt_tokens: {dist: uniform, low: 500, high: 3000}, "
    "system_prompts: 3, system_prompt_choice: zipf}"
)
MESSAGE_TOKENS = "{dist: lognormal, median: 200, sigma: 0.8, max: 4000}"
ANSWER_TOKENS = "{dist: lognormal, median: 350, sigma: 0.6, max: 2048}"
TIER_MIX = "{standard: 0.9, priority: 0.1}"


def account_shares(accounts: int) -> list[float]:
    weights = [1.0 / rank**ACCOUNT_ZIPF_EXPONENT for rank in range(1, accounts + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def spend_tier(rank: int) -> str | int:
    return next((tier for last, tier in SPEND_TIERS if rank <= last), 1)


def scenario_yaml(replicas: int, load: float, accounts: int = ACCOUNTS) -> str:
    sessions_per_s = load * SATURATION_SESSIONS_PER_S_PER_REPLICA * replicas
    shares = account_shares(accounts)
    lines = [
        HEADER.format(
            replicas=replicas,
            accounts=accounts,
            load=load,
            sessions_per_s=sessions_per_s,
            headroom=LIMIT_HEADROOM,
            raised=sum(_floors(sessions_per_s * share) is not None for share in shares),
        ),
        "name: fleet-day",
        f"description: {replicas} x Llama-3.1-8B, {accounts:,} chat accounts, affinity, "
        f"{load:.0%} load",
        "seed: 1",
        "duration_s: 1h",
        "warmup_s: 5m",
        "drain_s: 5m           # turns still in flight at the end are recorded as unanswered",
        "sample_interval_s: 30",
        "models:",
        "  llama-8b:",
        "    architecture: llama-3.1-8b",
        "    pools:",
        f"      main: {{gpu: h100, replicas: {replicas}, max_num_seqs: 256, "
        "max_batched_tokens: 8192, prefix_caching: true}",
        "    routing: {policy: affinity, bounded_load: 1.25}",
        "rate_limits: {}       # PLATFORM.md's adaptive limits and request cap",
        "accounts:",
    ]
    for rank, share in enumerate(shares, start=1):
        users = max(1, round(USERS_TOTAL * share))
        floors = _floors(sessions_per_s * share)
        limits = (
            ""
            if floors is None
            else ", limits: {policy: adaptive, "
            f"prompt_tpm: {floors[0]:.0f}, uncached_prompt_tpm: {floors[1]:.0f}, "
            f"generated_tpm: {floors[2]:.0f}}}"
        )
        lines.append(
            f"  - {{name: {_name(rank)}, spend_tier: {spend_tier(rank)}, users: {users}{limits}}}"
        )
    lines.append("traffic:")
    for rank, share in enumerate(shares, start=1):
        lines.append(_source(rank, sessions_per_s * share, first=rank == 1))
    return "\n".join(lines) + "\n"


def _floors(sessions_per_s: float) -> tuple[float, float, float] | None:
    """An account's own floors (tokens per minute) when its expected use x LIMIT_HEADROOM
    passes a default floor; None to keep the defaults."""
    use_tpm = [sessions_per_s * tokens * 60 for tokens in TOKENS_PER_SESSION]
    floors = tuple(
        max(default, LIMIT_HEADROOM * use)
        for default, use in zip(DEFAULT_FLOORS_TPM, use_tpm, strict=True)
    )
    return None if floors == DEFAULT_FLOORS_TPM else (floors[0], floors[1], floors[2])


def _name(rank: int) -> str:
    return f"acct-{rank:04d}"


def _source(rank: int, sessions_per_s: float, first: bool) -> str:
    """One account's chat traffic; the first source defines the shared anchors, others alias."""
    shared = (
        f"sessions: &chat {SESSIONS}, prompt_tokens: &message {MESSAGE_TOKENS}, "
        f"output_tokens: &answer {ANSWER_TOKENS}, tier_mix: &mix {TIER_MIX}"
        if first
        else "sessions: *chat, prompt_tokens: *message, output_tokens: *answer, tier_mix: *mix"
    )
    name = _name(rank)
    return (
        f"  - {{name: {name}, account: {name}, model: llama-8b, "
        f"arrivals: {{process: poisson, rate_per_s: {sessions_per_s:.6g}}}, {shared}}}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=64)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of saturation")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("fleet-day.yaml"), help="YAML path"
    )
    args = parser.parse_args()
    args.out.write_text(scenario_yaml(args.replicas, args.load, args.accounts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
