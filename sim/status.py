"""Every HTTP status an attempt can end with, in one place (PLATFORM.md, "Billing and headers").

The gateway refuses with 400, 402, 404, 429 or 503; a replica answers 200. A Batch row its job's
expiry caught unfinished ends with STATUS_EXPIRED. An attempt still queued or running when the
run stopped has no answer: STATUS_IN_FLIGHT.
"""

from __future__ import annotations

STATUS_IN_FLIGHT = 0  # no answer yet when the run stopped draining
STATUS_OK = 200
STATUS_BAD_REQUEST = 400  # prompt + output longer than a replica of the pool can ever hold
STATUS_BUDGET = 402  # the account's spend reached its budget for the period
STATUS_UNKNOWN_MODEL = 404  # no pool serves the model id (and tier)
STATUS_RATE_LIMITED = 429  # over a token limit or the request cap
STATUS_SHED = 503  # the pool is too busy: overload shedding
# A Batch row its job's expiry (`expire_after_s`) caught unfinished, waiting or running: not an
# answer the platform documents per row (its batch job reports the row as expired); 408
# Request Timeout is the nearest HTTP meaning.
STATUS_EXPIRED = 408

# Refusals a client retries with backoff; any other refusal is final.
RETRYABLE = frozenset({STATUS_RATE_LIMITED, STATUS_SHED})
