"""The cells of a command and the one loop that runs them. A *cell* is one (scenario, method, seed),
for a rehearsal method also the images it keeps: one record, one checkpoint, one TensorBoard run.

Every path runs a cell in the same steps: :meth:`Bench.pending` plans it (reused, or run with these
settings, reuse key and checkpoint), :func:`execute` runs it (its scenario, the replay judge for a
method that decodes its memory, :func:`~.runner.run_cell`), and :meth:`Bench.complete` saves its
record and rewrites the results files. :func:`run_in_process` does this one cell after another (in
a distributed run, every process runs each cell together); :func:`~.grid.run_grid` ships
:func:`execute` to Ray workers."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from dataclasses import dataclass

import torch

from baselines import declared, method_preset, resolve_options
from ctrl_bench import distributed
from scenarios import make_scenario, scenario_label

from . import provenance
from .config import RunConfig
from .continual import DEFAULT_IMAGES
from .plots import FIGURES_TB_DIR, write_figures
from .presets import BUDGET, budget_override, common_settings
from .records import Cell, RecordStore, decide, reuse_key, short_hash
from .replay_judge import ReplayJudgePlugin, load_or_train_judge
from .results import write_results
from .runner import RunInterrupted, run_cell
from .tb_logger import WandBRun


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what finished and how to resume."""


class DataError(RuntimeError):
    """A data set that cannot be read or used (the CLI exits 1)."""


@dataclass(frozen=True)
class CellPlan:
    """A cell to run: its scenario name, settings, reuse key and checkpoint path."""
    name: str
    cell: Cell
    settings: dict
    key: dict
    checkpoint: str


def silence_warnings() -> None:
    """Avalanche's deprecation decorator turns warnings back on for every call; keep the console readable."""
    warnings.filterwarnings("ignore")
    warnings.showwarning = lambda *args, **kwargs: None


def method_settings(method: str, name: str, family: str, common: dict, options: dict) -> dict:
    """Everything ``method`` runs with in preset ``name`` on a scenario of ``family``: its own preset
    values, then its ``--option`` values, the shared ones it does not set for itself (the budget, the
    batch size) filled in from ``common``, and its remaining defaults (when its module says them). A
    learning rate is kept only where given: the shared one is in ``common``."""
    own = {**method_preset(method, name, family, common["backbone"]), **options}
    for key in (*BUDGET, "batch_size"):
        own.setdefault(key, common[key])
    return resolve_options(method, own)


def cell_settings(config: RunConfig, data, method: str, device: torch.device, memory: int | None = None,
                  epochs: int | None = None) -> dict:
    """Everything besides data, code and seed that a cell's numbers depend on (part of its reuse
    key): the shared settings of the preset (with the images a rehearsal cell keeps) and the
    method's own (:func:`method_settings`), so that one method's settings never invalidate
    another's records; and the data it is evaluated on."""
    common = common_settings(config.preset, config.overrides, data.family)
    if memory is not None:
        common["mem_size"] = memory
    if epochs is not None:  # one point of a budget curve: this many epochs for every experience
        common["epochs"], common["first_epochs"] = epochs, None
    own = method_settings(method, config.preset, data.family, common, config.method_options.get(method, {}))
    settings = {"preset": config.preset, "n_experiences": data.n_experiences,
                "fixed_class_order": None if config.class_order is None else list(config.class_order),
                "threads": config.threads, "device_type": device.type, "config": common, "method": own}
    if data.validation is not None:
        settings["validation"] = data.validation
    if data.first_classes is not None:
        settings["first_experience_classes"] = data.first_classes
    if config.distributed:
        settings["world_size"] = distributed.world_size()
    if method in config.tuned:  # where its options came from: part of the reuse key, and of its row's label
        settings["tuned"] = {k: config.tuned[method][k] for k in ("scenario", "trials", "sha256")}
    if config.eval_every is not None:  # only when asked for: a run without it keeps its reuse key
        settings["continual_eval"] = {"every_steps": config.eval_every,
                                      "images_per_experience": config.eval_images or DEFAULT_IMAGES}
    return settings


def memories(config: RunConfig, data, method: str) -> list[int | None]:
    """The images each cell of ``method`` keeps: [None] unless it is a rehearsal method (``REHEARSAL``
    in its module); else ``--mem-size`` and what fits in each ``--memory-floats`` (⌊N / (C·H·W)⌋), or
    the preset's. DataError when a float budget holds no image."""
    if not declared(method, "REHEARSAL"):
        return [None]
    x = data.arrays[0]
    floats = math.prod(x.shape[1:])
    sizes = list(config.mem_sizes)
    for budget in config.memory_floats:
        if budget < floats:
            channels = 1 if x.ndim == 3 else x.shape[3]
            raise DataError(f"--memory-floats {budget} holds no image of {data.name} ({channels} × {x.shape[1]} × "
                            f"{x.shape[2]} = {floats:,} floats each): give at least {floats:,}")
        sizes.append(budget // floats)
    return sorted(set(sizes)) or [common_settings(config.preset, config.overrides, data.family)["mem_size"]]


def unique_labels(config: RunConfig, datasets: dict, store: RecordStore) -> dict[str, str]:
    """Each scenario's label: "mnist-5k-5" for npz:…/mnist-5k.npz, unless another data file holds
    that label (in this command, or in the records under --out): then the file's label carries a
    short hash of its path, "mnist-5k-3fa2c1-5", and the console says so."""
    labels, taken = {}, {}
    for name in config.scenarios:
        label = scenario_label(name, config.n_experiences, config.validation, config.first_experience_classes)
        source = datasets[name].source
        owners = store.sources(label) | ({taken[label]} if label in taken else set())
        if owners - {source}:
            stem, _, n = label.rpartition("-")
            hashed = f"{stem}-{hashlib.sha256(source.encode()).hexdigest()[:6]}-{n}"
            print(f"note: scenario label {label} is taken by {sorted(owners - {source})[0]}; {name} is labelled "
                  f"{hashed}", flush=True)
            label = hashed
        taken.setdefault(label, source)
        labels[name] = label
    return labels


class Bench:
    """What the cells of one command share (provenance, the record store, data hashes, code
    versions), and the steps around running one cell: whether to run it (:meth:`pending`, which says
    so on the console), the replay judge it is scored by (:meth:`judge`), and its record once it ran
    (:meth:`complete`)."""

    def __init__(self, config: RunConfig, device: torch.device, datasets: dict, fitted: dict | None = None,
                 judges_dir: str | None = None):
        """``fitted``: with --budget-flops, {(scenario name, method, memory, F): epochs}
        (:func:`.budget.fitted_epochs`); ``judges_dir``: where replay judges are cached (default
        --out/judges)."""
        self.config, self.device, self.datasets = config, device, datasets
        self.env = provenance.environment(device, config.command)
        self.store = RecordStore(config.out)
        self.this_command: dict[str, str] = {}  # record path → "ran" | "reused"
        self.labels = unique_labels(config, datasets, self.store)
        self.judges_dir = judges_dir or os.path.join(config.out, "judges")
        self.cells = [(name, cell) for name in config.scenarios for seed in config.seeds for method in config.methods
                      for memory in memories(config, datasets[name], method)
                      for cell in self._budgets(Cell(self.labels[name], method, seed, memory,
                                                     tuned=config.tuned.get(method, {}).get("sha256")), name, fitted)]
        self.data_hashes = {name: provenance.data_hash(data.files) for name, data in datasets.items()}
        self.code_versions = {method: provenance.code_version(method) for method in config.methods}
        self._judges: dict[str, torch.nn.Module] = {}

    def _budgets(self, cell: Cell, name: str, fitted: dict | None) -> list[Cell]:
        """``cell`` at each training budget of the command: the preset's, each of ``--epochs A B C``,
        or the epochs fitted to each ``--budget-flops``."""
        if self.config.budget_flops:
            return [dataclasses.replace(cell, epochs=fitted[(name, cell.method, cell.memory, flops)], budget_flops=flops)
                    for flops in self.config.budget_flops]
        return [dataclasses.replace(cell, epochs=epochs) for epochs in (self.config.epochs_values or (None,))]

    def pending(self):
        """The plans of the cells to run, one at a time as they are asked for (so that the console says
        what runs when it starts); a reused cell is said and skipped."""
        for name, cell in self.cells:
            plan = self.plan(name, cell)
            if plan is not None:
                yield plan

    def reuse_decision(self, name: str, cell: Cell) -> tuple[bool, str, dict, dict]:
        """(reuse the cell's record?, why, its settings, its reuse key); writes and deletes nothing."""
        settings = cell_settings(self.config, self.datasets[name], cell.method, self.device, cell.memory, cell.epochs)
        key = reuse_key(settings, self.data_hashes[name], self.code_versions[cell.method], self.env["device"])
        record, missing = self.store.load(cell)
        return (*decide(record, key, self.config.reuse, missing), settings, key)

    def plan(self, name: str, cell: Cell) -> CellPlan | None:
        """None when the cell's record is reused; else its settings, reuse key and checkpoint (the
        cell's checkpoints of other keys are deleted)."""
        reuse, why, settings, key = self.reuse_decision(name, cell)
        if reuse:
            print(f"{cell}: reused ({why})", flush=True)
            self.this_command[self.store.record_path(cell)] = "reused"
            self.store.drop_checkpoints(cell)  # one a kill left between the record and its removal
            return None
        checkpoint = self.store.checkpoint_path(cell, key)
        self.store.drop_checkpoints(cell, keep=None if self.config.reuse == "never" else checkpoint)
        resuming = "resuming from its checkpoint, " if os.path.exists(checkpoint) else ""
        print(f"{cell}: running ({resuming}{why})", flush=True)
        return CellPlan(name, cell, settings, key, checkpoint)

    def tensorboard_dir(self, cell: Cell) -> str | None:
        """Where ``cell`` logs to TensorBoard (absolute), or None without ``--log tensorboard``."""
        return os.path.abspath(self.store.tensorboard_dir(cell)) if "tensorboard" in self.config.log else None

    def wandb_run(self, plan: CellPlan) -> WandBRun | None:
        """The W&B run of a planned cell with ``--log wandb`` (else None): under ``--out/wandb/<cell>``,
        grouped by the command, named by the cell, its id fixed by the cell and its reuse key (a resumed
        run continues it), its config the cell's settings."""
        if "wandb" not in self.config.log:
            return None
        return WandBRun(dir=os.path.abspath(os.path.join(self.config.out, "wandb", plan.cell.where)),
                        project=os.environ.get("WANDB_PROJECT", "ctrl-bench"),
                        group=f"command-{short_hash(self.config.command)[:10]}", name=str(plan.cell),
                        id=short_hash([plan.cell.where, plan.key]), config={**plan.settings, "seed": plan.cell.seed,
                                                                          "scenario": plan.cell.scenario,
                                                                          "method": plan.cell.method,
                                                                          "command": self.config.command})

    def judge(self, name: str, method: str):
        """The replay judge of scenario ``name`` for a method that decodes its memory
        (``DECODES_MEMORY`` in its module), else None; trained once, cached under --out/judges."""
        if not declared(method, "DECODES_MEMORY"):
            return None
        if name not in self._judges:
            data = self.datasets[name]
            held = "" if data.validation is None else f"-val{100 * data.validation:g}"  # trained without those images
            cache = os.path.join(self.judges_dir, f"{self.data_hashes[name][:16]}{held}.pt")
            self._judges[name] = load_or_train_judge(cache, data, self.device)
        return self._judges[name]

    def complete(self, plan: CellPlan, record: dict, torch_threads: int | None = None, failed=None) -> None:
        """Save the record of a cell that ran (with its provenance; ``torch_threads``: the count the
        cell ran with, when another process ran it), delete its checkpoint, and rewrite the results
        files (``failed``: the cells of this command that failed so far)."""
        env = self.env if torch_threads is None else {**self.env, "torch_threads": torch_threads}
        data, common, own = self.datasets[plan.name], plan.settings["config"], plan.settings["method"]
        record.update(scenario=plan.cell.scenario, scenario_source=data.source, memory_images=plan.cell.memory,
                      cell_epochs=plan.cell.epochs, cell_budget_flops=plan.cell.budget_flops,
                      evaluated_on=data.evaluated_on,
                      budget={"epochs": own["epochs"], "first_epochs": own.get("first_epochs"),
                              "batch_size": own["batch_size"], "override": budget_override(common, own)},
                      device=self.env["device"], reuse_key=plan.key,
                      provenance={**env, "data_sha256": self.data_hashes[plan.name],
                                  "code_version": self.code_versions[plan.cell.method],
                                  "finished_at": provenance.utc_now()})
        self.store.save(plan.cell, record)
        if not self.config.keep_checkpoints and os.path.exists(plan.checkpoint):
            self.store.remove_checkpoint(plan.checkpoint)
        self.this_command[self.store.record_path(plan.cell)] = "ran"
        self.write(failed=failed)

    def write(self, figures: bool = False, failed: list[dict] | None = None) -> str:
        """The results files from every record under --out (and, with ``figures``, the figures);
        ``failed``: the cells of this command that failed (a grid run), each with its error."""
        records, problems = self.store.all_records()
        for problem in problems:
            print(f"warning: {problem}", flush=True)
        runs = [{**record, "source": self.this_command.get(path, "earlier")} for path, record in records.items()]
        env = self.env
        header = [f"written by: `{env['command']}` at {provenance.utc_now()}",
                  f"code: git commit {env['git_commit']}",
                  f"software: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
                  f"avalanche-lib {env['avalanche_lib']}",
                  f"device: {env['device']}; torch threads: {env['torch_threads']}",
                  "per-run provenance (command, commit, versions, device, threads, data SHA-256, code version, "
                  "class order, seconds per experience) is in results.json and results.csv"]
        methods = list(self.config.methods)
        printed = write_results(self.config.out, runs, methods, header, provenance=env, failed=failed,
                                reference=self.config.reference)
        if figures:
            written = write_figures(self.config.out, runs, methods)
            if written:  # none while no run has a record (every cell of a grid failed)
                printed += f"figures: {', '.join(written)} (and in TensorBoard under {FIGURES_TB_DIR}/)\n"
        return printed

    def interrupted(self, finished: str) -> str:
        """The line a Ctrl-C prints: what finished (``finished``), and how to resume."""
        what = (f"interrupted: {len(self.this_command)} of {len(self.cells)} runs done (records in "
                f"{os.path.join(self.config.out, 'records')}){finished}")
        how = ("rerun the same command without --reuse never to resume" if self.config.reuse == "never"
               else "rerun the same command to resume")
        return f"{what}. Finished experiences are kept: {how}."


def execute(plan: CellPlan, data, class_order, device, judge, tensorboard_dir: str | None, progress: bool = True,
            label: str = "", wandb_run: WandBRun | None = None) -> dict:
    """Run one planned cell, in this process or a Ray worker: its scenario from ``data`` and its seed,
    the replay judge's plugin when ``judge`` is given, and :func:`~.runner.run_cell` (logging to
    TensorBoard under ``tensorboard_dir`` and to ``wandb_run``, each where given). Returns its record
    (without reuse key and provenance, which :meth:`Bench.complete` adds)."""
    scenario = make_scenario(data, plan.cell.seed, class_order)
    plugins = [ReplayJudgePlugin(judge.to(device))] if judge is not None else []
    return run_cell(plan.cell.method, plan.cell.seed, scenario, plan.settings, device, plan.checkpoint,
                    tensorboard_dir, progress=progress, label=label, extra_plugins=plugins, wandb_run=wandb_run)


def run_in_process(bench: Bench) -> str:
    """Every cell in this process, one after another; the console summary. In a distributed run every
    process runs each cell together (rank 0 decides which, and alone writes anything)."""
    config, main = bench.config, distributed.is_main()
    plans = distributed.broadcast(list(bench.pending()) if main else None) if config.distributed else bench.pending()
    running = None
    try:
        for plan in plans:
            running = plan.cell
            record = execute(plan, bench.datasets[plan.name], config.class_order, bench.device,
                             bench.judge(plan.name, plan.cell.method) if main else None,
                             bench.tensorboard_dir(plan.cell) if main else None,
                             progress=config.progress and main, label=str(plan.cell),
                             wandb_run=bench.wandb_run(plan) if main else None)
            if main:
                bench.complete(plan, record)
            distributed.barrier()
            running = None
    except KeyboardInterrupt as err:
        stopped = ""
        if running is not None and isinstance(err, RunInterrupted):
            stopped = f"; {running} stopped after {err.finished} of {err.total} experiences"
            if err.finished:
                stopped += " (checkpoint kept)"
        raise BenchInterrupted(bench.interrupted(stopped)) from None
    return bench.write(figures=True) if main else ""
