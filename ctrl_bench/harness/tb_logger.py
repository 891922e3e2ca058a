"""TensorBoard event files that a resumed run can trust."""

from __future__ import annotations

import os

from avalanche.logging import TensorboardLogger
from avalanche.logging.base_logger import BaseLogger

EVENT_FILE_PREFIX = "events.out.tfevents."


class ExperienceTensorboardLogger(TensorboardLogger):
    """Avalanche's TensorBoard logger writing one event file per experience (suffix ``.exp<i>``).

    A resumed run trains again the experience it was stopped in; starting an experience first deletes
    the event files of that experience and of later ones (written by the interrupted run), so that
    TensorBoard holds every step once. SummaryWriter's ``purge_step`` cannot do this: it purges from
    one step on for every tag, and the tags here count different things (iterations, epochs,
    experiences)."""

    def __init__(self, log_dir: str):
        BaseLogger.__init__(self)  # no writer, hence no event file, until an experience starts
        self.log_dir, self.writer = str(log_dir), None

    def start_experience(self, index: int) -> None:
        self.finish_experience()
        os.makedirs(self.log_dir, exist_ok=True)
        finished = tuple(f".exp{j:03d}" for j in range(index))
        for name in os.listdir(self.log_dir):
            if name.startswith(EVENT_FILE_PREFIX) and not name.endswith(finished):
                os.remove(os.path.join(self.log_dir, name))
        self.writer = self._make_writer(self.log_dir, f".exp{index:03d}")

    def finish_experience(self) -> None:
        """Flush and close the experience's event file (before its checkpoint is written)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        self.finish_experience()
