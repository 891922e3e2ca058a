"""Files written whole or not at all: each is written to a temporary file beside its target
(``.tmp-*``), flushed to disk, then renamed over the target, so that a kill never leaves half a
file. A write that fails (a full disk, no permission) raises :class:`WriteError`, which names the
file and leaves the target as it was."""

from __future__ import annotations

import os
import tempfile

TMP_PREFIX = ".tmp-"  # what a killed write leaves; the next command deletes it (bench.clean_leftovers)


class WriteError(OSError):
    """A file of the results could not be written; the message names it and says why."""


def _staged(path: str, data: bytes) -> str:
    """``data`` in a temporary file beside ``path``, on disk; its path."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _failed(path: str, err: OSError) -> WriteError:
    return WriteError(err.errno, f"cannot write {path}: {err.strerror or err}", path)


def atomic_write_bytes(path: str, data: bytes, keep_previous: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; with ``keep_previous`` the file it replaces stays as
    ``<path>.prev``."""
    try:
        tmp = _staged(path, data)
    except OSError as err:
        raise _failed(path, err) from err
    try:
        if keep_previous and os.path.exists(path):
            os.replace(path, path + ".prev")
        os.replace(tmp, path)
    except OSError as err:
        raise _failed(path, err) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_set(texts: dict[str, str]) -> None:
    """Several files written as one set: every one is complete on disk before the first replaces its
    old version, so that a kill can fall only between the renames (microseconds), never leave one half
    written, and the next command rewrites them all."""
    staged = []
    try:
        for path, text in texts.items():
            try:
                staged.append((_staged(path, text.encode()), path))
            except OSError as err:
                raise _failed(path, err) from err
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
