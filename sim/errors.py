"""Errors that are the user's to fix: the CLI prints them without a traceback and exits with 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input (a scenario, a trace, a flag). The message names the file, line and field."""

    exit_code = 2
