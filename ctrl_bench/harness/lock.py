"""One command at a time in an output folder: an advisory lock on ``--out/.lock`` (``fcntl.flock``),
held for the whole command and released by the system when the process ends, however it ends. The
file names the command that holds it, so that a second one can say whom it waits for."""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager


class OutInUse(RuntimeError):
    """Another command holds the lock on --out (the CLI exits 1)."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 65536).decode() or "{}")
        return f"`{info['command']}` (pid {info['pid']}, since {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another command"


@contextmanager
def out_lock(out: str, command: str, wait: bool = False):
    """Hold ``out``'s lock for the block; :class:`OutInUse` names the holder unless ``wait``."""
    os.makedirs(out, exist_ok=True)
    fd = os.open(os.path.join(out, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise OutInUse(f"{out} is in use by {holder}; wait until it finishes, rerun with --wait, or give "
                               "another --out") from None
            print(f"waiting for {holder} to finish with {out} …", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"command": command, "pid": os.getpid(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock
