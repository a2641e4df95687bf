"""capsim: a discrete-event capacity simulator for pay-per-token LLM inference services."""

__version__ = "0.1.0"
