"""The typed configuration of one command: what the CLI turns its arguments into, and all the
harness takes (so that it can be driven from Python without a command line)::

    from ctrl_bench.harness import RunConfig, run
    outcome = run(RunConfig(scenarios=("mnist_5k",), methods=("naive", "replay"), seeds=(0, 1), out="runs"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_METHODS = ("ctrl", "naive", "lwf", "icarl", "replay")
DEFAULT_SCENARIOS = ("mnist_5k",)
REUSE_POLICIES = ("never", "valid", "always")
LOGGERS = ("tensorboard", "wandb")  # where each cell logs its run (--log)
WANDB_INSTALL = 'pip install -e ".[wandb]"'
# Settings of the preset every method shares that a command may override (None: the preset's).
COMMON_OVERRIDES = ("backbone", "size", "feature_dim", "epochs", "first_epochs", "batch_size", "lr", "mem_size")


class ConfigError(ValueError):
    """A name, value or combination the harness cannot run (the CLI exits 2)."""


@dataclass(frozen=True)
class GridConfig:
    """Cells in parallel on Ray: up to ``workers`` at once through a local instance, or on the cluster
    at ``ray_address``; each cell gets ``cpus_per_cell`` CPUs (and runs int(that) torch threads) and
    ``gpus_per_cell`` GPUs."""

    workers: int | None = None
    ray_address: str | None = None
    cpus_per_cell: float | None = None  # None: the run's threads, or 1
    gpus_per_cell: float | None = None  # None: 1 on CUDA, else 0


@dataclass(frozen=True)
class RunConfig:
    """Methods × scenarios × seeds, and how to run them. ``overrides`` replace values of the preset
    every method shares (keys of :data:`COMMON_OVERRIDES`); ``method_options`` are each method's own
    settings ({method: {name: value}}, as ``--option METHOD.NAME=VALUE``). ``threads`` is the torch
    thread count (None: the current one); it is part of every run's settings."""

    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (0,)
    preset: str = "quick"
    n_experiences: int | None = None
    class_order: tuple[int, ...] | None = None
    validation: float | None = None  # hold out this fraction of every class's training images and evaluate on it
    first_experience_classes: int | None = None  # a warm start: this many classes first, the rest split evenly
    mem_sizes: tuple[int, ...] = ()  # images a rehearsal method keeps, one cell per value (none: the preset's)
    memory_floats: tuple[int, ...] = ()  # ... or as many images as fit in each of these float budgets
    epochs_values: tuple[int, ...] = ()  # several budgets: every method one cell per value (a budget curve)
    budget_flops: tuple[float, ...] = ()  # compute-matched: every method the epochs that fit in each of these FLOPs
    device: str = "auto"
    threads: int | None = None
    overrides: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    out: str = "runs"
    reuse: str = "valid"
    keep_checkpoints: bool = False
    data_root: str = "./data"
    download: bool = True
    progress: bool = True
    grid: GridConfig | None = None
    wait: bool = False  # another command holds --out: wait for it (else OutInUse)
    distributed: bool = False  # one run over the processes torchrun started (methods that declare DISTRIBUTED)
    command: str = ""  # the command line, for provenance
    reference: str | None = None  # the method of the rows paired differences are taken to (None: the best row)
    # --settings FILE: {method: {"settings", "scenario", "trials", "seeds", "sha256"}} of a tuned.json (tune.load_tuned);
    # the settings are already in method_options, this says where they came from
    tuned: dict = field(default_factory=dict)
    # --eval-every STEPS: evaluate the earlier experiences' classes every STEPS training steps, on
    # eval_images (None: continual.DEFAULT_IMAGES) of each one's evaluation images; part of a cell's settings
    eval_every: int | None = None
    eval_images: int | None = None
    log: tuple[str, ...] = ("tensorboard",)  # where each cell logs (LOGGERS); not part of its settings

    def check(self) -> None:
        """ConfigError for what is wrong with the values themselves (names are checked by ``run``)."""
        for flag, values in (("--scenario", self.scenarios), ("--methods", self.methods), ("--seeds", self.seeds)):
            if not values:
                raise ConfigError(f"{flag} needs at least one value")
        if len(set(self.methods)) != len(self.methods) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("--methods and --seeds must not repeat a value")
        if len(set(self.scenarios)) != len(self.scenarios):
            raise ConfigError("--scenario must not repeat a value")
        unknown = sorted(set(self.overrides) - set(COMMON_OVERRIDES))
        if unknown:
            raise ConfigError(f"unknown overrides {unknown}; known: {', '.join(COMMON_OVERRIDES)}")
        if self.first_experience_classes is not None and self.first_experience_classes < 1:
            raise ConfigError(f"--first-experience-classes must be ≥ 1, got {self.first_experience_classes}")
        if self.validation is not None and not 0 < self.validation < 1:
            raise ConfigError(f"--validation must be a fraction in (0, 1), got {self.validation}")
        if self.epochs_values and "epochs" in self.overrides:
            raise ConfigError("give the epochs once: several values in epochs_values, or one in overrides")
        if self.budget_flops:
            given = [flag for flag, value in (("--epochs", self.epochs_values or self.overrides.get("epochs")),
                                              ("--first-epochs", self.overrides.get("first_epochs"))) if value]
            given += [f"--option {m}.{name}" for m, options in self.method_options.items() for name in options
                      if name in ("epochs", "first_epochs")]
            if given:
                raise ConfigError(f"--budget-flops chooses every method's epochs; it does not combine with {given[0]}")
            if any(not 0 < v < math.inf for v in self.budget_flops) or len(set(self.budget_flops)) != len(self.budget_flops):
                raise ConfigError(f"--budget-flops takes distinct positive counts, got "
                                  f"{' '.join(f'{v:g}' for v in self.budget_flops)}")
        for flag, values in (("--mem-size", self.mem_sizes), ("--memory-floats", self.memory_floats),
                             ("--epochs", self.epochs_values)):
            if any(v < 1 for v in values) or len(set(values)) != len(values):
                raise ConfigError(f"{flag} takes distinct positive counts, got {' '.join(map(str, values))}")
        if self.reuse not in REUSE_POLICIES:
            raise ConfigError(f"unknown reuse policy {self.reuse!r}; choose one of {', '.join(REUSE_POLICIES)}")
        for flag, value in (("--eval-every", self.eval_every), ("--eval-images", self.eval_images)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{flag} takes a positive count, got {value!r}")
        if self.eval_images is not None and self.eval_every is None:
            raise ConfigError("--eval-images sets the continual evaluation's images: give --eval-every STEPS too")
        if self.eval_every is not None and self.distributed:
            raise ConfigError("--eval-every does not combine with --distributed yet: run the continual evaluation "
                              "in one process")
        unknown = [name for name in self.log if name not in LOGGERS]
        if unknown or len(set(self.log)) != len(self.log):
            raise ConfigError(f"--log takes distinct names among {', '.join(LOGGERS)}, got {' '.join(self.log)}")
        if "wandb" in self.log:
            try:
                import wandb  # noqa: F401  (an optional extra)
            except ImportError:
                raise ConfigError(f"--log wandb needs wandb: {WANDB_INSTALL}") from None
        stray = sorted(set(self.method_options) - set(self.methods))
        if stray:
            raise ConfigError(f"options given for {', '.join(stray)}, which is not among the methods")
