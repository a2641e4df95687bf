"""The yardstick: a bare hand-written heapq M/M/c loop in pure Python.

Poisson arrivals, exponential service, c servers, one FIFO queue: the least work any Python event
loop can do per customer (two events: an arrival and a departure). capsim's cost per request is
compared with this loop's cost per customer. The mean wait is checked against Erlang C so that
the yardstick is known to simulate the queue it claims to.

    python benchmarks/mmc_loop.py --customers 100000        # prints one JSON line
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import time
from collections import deque

ARRIVAL, DEPARTURE = 0, 1


def simulate(
    customers: int, servers: int, arrival_rate: float, service_rate: float, seed: int
) -> tuple[float, int]:
    """Mean wait in queue, s, and the number of events, over `customers` arrivals."""
    rng = random.Random(seed)
    events: list[tuple[float, int]] = [(rng.expovariate(arrival_rate), ARRIVAL)]
    queue: deque[float] = deque()  # arrival times of waiting customers
    busy = arrived = handled = 0
    total_wait = 0.0
    while events:
        now, kind = heapq.heappop(events)
        handled += 1
        if kind == ARRIVAL:
            arrived += 1
            if arrived < customers:
                heapq.heappush(events, (now + rng.expovariate(arrival_rate), ARRIVAL))
            if busy < servers:
                busy += 1
                heapq.heappush(events, (now + rng.expovariate(service_rate), DEPARTURE))
            else:
                queue.append(now)
        elif queue:
            total_wait += now - queue.popleft()
            heapq.heappush(events, (now + rng.expovariate(service_rate), DEPARTURE))
        else:
            busy -= 1
    return total_wait / customers, handled


def erlang_c_wait_s(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean wait in queue of M/M/c (Erlang C), s."""
    offered = arrival_rate / service_rate
    rho = offered / servers
    terms = sum(offered**k / math.factorial(k) for k in range(servers))
    last = offered**servers / (math.factorial(servers) * (1 - rho))
    waiting_probability = last / (terms + last)
    return waiting_probability / (servers * service_rate - arrival_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description="Bare heapq M/M/c loop (the yardstick)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--servers", type=int, default=8)
    parser.add_argument("--utilisation", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    service_rate = 1.0
    arrival_rate = args.utilisation * args.servers * service_rate
    started = time.perf_counter()
    mean_wait_s, events = simulate(
        args.customers, args.servers, arrival_rate, service_rate, args.seed
    )
    loop_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "customers": args.customers,
                "servers": args.servers,
                "events": events,
                "loop_s": loop_s,
                "customers_per_s": args.customers / loop_s,
                "mean_wait_s": mean_wait_s,
                "erlang_c_wait_s": erlang_c_wait_s(args.servers, arrival_rate, service_rate),
            }
        )
    )


if __name__ == "__main__":
    main()
