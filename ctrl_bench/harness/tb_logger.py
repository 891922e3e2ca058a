"""TensorBoard event files that a resumed run can trust, and a W&B run per cell (``--log wandb``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from avalanche.evaluation.metric_results import AlternativeValues, TensorImage
from avalanche.logging import TensorboardLogger
from avalanche.logging.base_logger import BaseLogger
from avalanche.logging.wandb_logger import WandBLogger

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


@dataclass(frozen=True)
class WandBRun:
    """One cell's W&B run: ``dir`` (wandb writes ``<dir>/wandb/<run>``), the project, the group (one
    per command), the run's name and id (the same for a resumed cell, so that W&B continues its run)
    and its config (the cell's settings)."""

    dir: str
    project: str
    group: str
    name: str
    id: str
    config: dict = field(default_factory=dict)


class ExperienceWandBLogger(WandBLogger):
    """Avalanche's W&B logger for one cell (:class:`WandBRun`): the run starts with the first
    experience this process trains (``wandb.init`` in ``start_experience``, resumed under the cell's id),
    and ends in ``close``. Every value the evaluator publishes reaches it as it reaches TensorBoard:
    accuracies, forgetting, the continual evaluation, and i-CTRL's replay grids and judge score (images
    as ``wandb.Image``). Avalanche's logger passes a metric's x as W&B's step, which must only grow,
    while the x of the harness's metrics count different things (training iterations, experiences,
    epochs); here each value is logged at W&B's own next step, with its x beside it as ``x``. The
    record's numbers go into the run's summary (:meth:`log_summary`)."""

    def __init__(self, run: WandBRun):
        BaseLogger.__init__(self)  # no wandb.init, hence no run folder, until an experience starts
        self.import_wandb()
        self.spec, self.run = run, None
        self.step = self.exp_count = 0

    def start_experience(self, index: int) -> None:
        if self.run is not None:
            return
        os.makedirs(self.spec.dir, exist_ok=True)
        settings = self.wandb.Settings(console="off", silent=True)
        self.run = self.wandb.init(project=self.spec.project, group=self.spec.group, name=self.spec.name,
                                   id=self.spec.id, resume="allow", dir=self.spec.dir, config=self.spec.config,
                                   job_type="cell", save_code=False, reinit="create_new", settings=settings)

    def log_single_metric(self, name, value, x_plot):
        if self.run is None:
            return
        if isinstance(value, AlternativeValues):
            value = value.best_supported_value(TensorImage, float, int)
        if isinstance(value, TensorImage):
            image = value.image.detach().float().cpu()
            value = self.wandb.Image(image if image.ndim == 3 else image.unsqueeze(0))
        elif isinstance(value, bool) or not isinstance(value, (float, int)):
            return  # histograms and other kinds are TensorBoard's
        self.run.log({name: value, "x": x_plot})

    def after_training_exp(self, strategy, metric_values, **kwargs):
        """(Avalanche's logger logs the values a second time here.)"""

    def log_summary(self, result: dict) -> None:
        """The record's scalar numbers (last and learning accuracy, forgetting, min-ACC, …) as the run's summary."""
        if self.run is not None:
            self.run.summary.update({k: v for k, v in result.items()
                                     if isinstance(v, (int, float)) and not isinstance(v, bool)})

    def finish_experience(self) -> None:
        """The run stays open across experiences."""

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
