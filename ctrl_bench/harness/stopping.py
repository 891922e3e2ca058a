"""A command stopped from outside: SIGTERM (``timeout``, a batch scheduler, a cluster's preemption) and
SIGINT (Ctrl-C) both become :class:`Stopped`, a ``KeyboardInterrupt``, so that one path handles them:
the finished work is kept, Ray is shut down, and one line says what finished and how to go on.

Ray installs native handlers when it starts (a SIGTERM then prints a stack dump and aborts), so
:func:`install` is called again once Ray is up; Python's handler replaces the native one. Once the
closing line is out, :func:`leave` ends the process: at once where Ray ran, whose threads and exit
handlers can otherwise keep a stopped process alive after Ray has been shut down.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []  # the signals that arrived, in order


class Stopped(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGINT arrives."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum


def _raise(signum, frame):
    _received.append(signum)
    raise Stopped(signum)


def install() -> None:
    """Python handlers for :data:`SIGNALS` (main thread only; elsewhere Python cannot set them), and
    Ray Tune told to leave SIGINT to them."""
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _raise)


def signal_name() -> str:
    """The signal that stopped the command, as a reader knows it: "SIGTERM" or "Ctrl-C"."""
    if _received and _received[0] != signal.SIGINT:
        return signal.Signals(_received[0]).name
    return "Ctrl-C"


def closing_line(message: str) -> str:
    """``message`` (what finished, how to go on), headed by the signal when it was not Ctrl-C."""
    name = signal_name()
    return message if name == "Ctrl-C" else f"stopped by {name}; {message}"


def exit_code() -> int:
    """The shell's code for a command ended by the signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def leave(code: int):
    """Exit the process with ``code``. A stopped command (``code`` 128 + one of :data:`SIGNALS`, whichever
    handler caught it: the grid keeps its own for Ctrl-C) that loaded Ray ends at once, its streams flushed:
    everything that finished is already on disk, written atomically by the main thread, and Ray's threads
    and exit handlers are left no chance to hold the interpreter at exit."""
    if code in {128 + signum for signum in SIGNALS} and "ray" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
