"""Reading the user's input files: regular files only, at most a size cap, strict UTF-8.

An endless file (`/dev/zero`, a FIFO nobody writes to) would otherwise be read until memory runs
out or wait forever; a UTF-16 or binary file would surface as a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sim.errors import InputError

SCENARIO_MAX_BYTES = 64 * 2**20  # 64 MiB: a scenario with a million accounts is about 40 MiB
TRACE_MAX_BYTES = 2 * 2**30  # 2 GiB: the Mooncake traces are tens of MiB


def read_text(path: Path, what: str, max_bytes: int) -> str:
    """The text of the regular file `path`, or InputError naming `what` it is and why not.

    A BOM-prefixed UTF-8 file reads as UTF-8 (editors on Windows write one)."""
    data = read_bytes(path, what, max_bytes)
    if len(data) > max_bytes:
        raise InputError(
            f"{path}: the {what} is larger than {max_bytes / 2**20:,.0f} MiB, the most capsim reads"
        )
    return decode(data, path, what)


def read_bytes(path: Path, what: str, most: int) -> bytes:
    """Up to `most` + 1 bytes from the start of the regular file `path` (one more than `most`
    tells the caller the file is longer)."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file: cannot read the {what}") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise InputError(f"{path}: cannot read the {what}: {kind}")
        try:
            return handle.read(most + 1)
        except OSError as error:
            raise InputError(f"{path}: cannot read the {what}: {error.strerror}") from None


def decode(data: bytes, path: Path, what: str) -> str:
    """UTF-8 text (a leading BOM dropped), or InputError with the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        hint = " (UTF-16?)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise InputError(
            f"{path}:{line}: the {what} is not UTF-8 text{hint}: byte {data[error.start]:#04x} "
            f"at offset {error.start}; save it as UTF-8"
        ) from None
