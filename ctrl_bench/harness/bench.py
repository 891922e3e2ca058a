"""methods × scenarios × seeds from a :class:`~.config.RunConfig`, reusing the records that are still
valid: :func:`run` checks the configuration, reads the data, and runs the cells one after another or
on Ray (:mod:`.grid`)."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch

from . import provenance
from .config import ConfigError, RunConfig
from .records import Cell, RecordStore, decide, reuse_key
from .runner import RunInterrupted


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what finished and how to resume."""


class DataError(RuntimeError):
    """A data set that cannot be read or used (the CLI exits 1)."""


@dataclass
class RunOutcome:
    """What a command did: the console summary, and the cells that failed (a grid run)."""

    summary: str
    failed: list[dict]
    total: int


def cell_settings(config: RunConfig, data, method: str, device: torch.device, memory: int | None = None) -> dict:
    """Everything besides data, code and seed that a cell's numbers depend on (part of its reuse
    key): the shared settings of the preset (with the images a rehearsal cell keeps) and the
    method's own (``presets.method_settings``), so that one method's settings never invalidate
    another's records; and the data it is evaluated on."""
    from .presets import common_settings, method_settings

    common = common_settings(config.preset, config.overrides, data.family)
    if memory is not None:
        common["mem_size"] = memory
    own = method_settings(method, config.preset, data.family, common, config.method_options.get(method, {}))
    settings = {"preset": config.preset, "n_experiences": data.n_experiences,
                "fixed_class_order": None if config.class_order is None else list(config.class_order),
                "threads": config.threads, "device_type": device.type, "config": common, "method": own}
    if data.validation is not None:
        settings["validation"] = data.validation
    if data.first_classes is not None:
        settings["first_experience_classes"] = data.first_classes
    if config.distributed:
        from ctrl_bench import distributed

        settings["world_size"] = distributed.world_size()
    return settings


def memories(config: RunConfig, data, method: str) -> list[int | None]:
    """The images each cell of ``method`` keeps: [None] unless it is a rehearsal method (``REHEARSAL``
    in its module); else ``--mem-size`` and what fits in each ``--memory-floats`` (⌊N / (C·H·W)⌋), or
    the preset's. DataError when a float budget holds no image."""
    import math

    from baselines import get_method

    from .presets import common_settings

    if not getattr(get_method(method), "REHEARSAL", False):
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


class Bench:
    """What the cells of one command share (provenance, the record store, data hashes, code
    versions), and the steps around running one cell: whether to run it (:meth:`plan`, which says
    so on the console) and its record once it ran (:meth:`finish`). :func:`run` runs the cells one
    after another; :func:`ctrl_bench.harness.grid.run_grid` on Ray."""

    def __init__(self, config: RunConfig, device: torch.device, datasets: dict):
        from scenarios import scenario_label

        self.config, self.device, self.datasets = config, device, datasets
        self.env = provenance.environment(device, config.command)
        self.store = RecordStore(config.out)
        self.this_command: dict[str, str] = {}  # record path → "ran" | "reused"
        self.labels = unique_labels(config, datasets, self.store)
        self.cells = [(name, Cell(self.labels[name], method, seed, memory))
                      for name in config.scenarios for seed in config.seeds for method in config.methods
                      for memory in memories(config, datasets[name], method)]
        self.data_hashes = {name: provenance.data_hash(data.files) for name, data in datasets.items()}
        self.code_versions = {method: provenance.code_version(method) for method in config.methods}
        self._judges: dict[str, torch.nn.Module] = {}

    def plan(self, name: str, cell: Cell) -> CellPlan | None:
        """None when the cell's record is reused; else its settings, reuse key and checkpoint (the
        cell's checkpoints of other keys are deleted)."""
        settings = cell_settings(self.config, self.datasets[name], cell.method, self.device, cell.memory)
        key = reuse_key(settings, self.data_hashes[name], self.code_versions[cell.method], self.env["device"])
        record, missing = self.store.load(cell)
        reuse, why = decide(record, key, self.config.reuse, missing)
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

    def finish(self, plan: CellPlan, record: dict, torch_threads: int | None = None) -> None:
        """Save the record of a cell that ran (with its provenance; ``torch_threads``: the count the
        cell ran with, when another process ran it) and delete its checkpoint."""
        env = self.env if torch_threads is None else {**self.env, "torch_threads": torch_threads}
        from .presets import budget_override

        data, common, own = self.datasets[plan.name], plan.settings["config"], plan.settings["method"]
        record.update(scenario=plan.cell.scenario, scenario_source=data.source, memory_images=plan.cell.memory,
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

    def judge(self, name: str, method: str):
        """The replay judge of scenario ``name`` for a method that decodes its memory
        (``DECODES_MEMORY`` in its module), else None; trained once, cached under --out/judges."""
        from baselines import get_method

        from .replay_judge import load_or_train_judge

        if not getattr(get_method(method), "DECODES_MEMORY", False):
            return None
        if name not in self._judges:
            data = self.datasets[name]
            held = "" if data.validation is None else f"-val{100 * data.validation:g}"  # trained without those images
            cache = os.path.join(self.config.out, "judges", f"{self.data_hashes[name][:16]}{held}.pt")
            self._judges[name] = load_or_train_judge(cache, self.datasets[name], self.device)
        return self._judges[name]

    def write(self, figures: bool = False, failed: list[dict] | None = None) -> str:
        """The results files from every record under --out (and, with ``figures``, the figures);
        ``failed``: the cells of this command that failed (a grid run), each with its error."""
        from .plots import FIGURES_TB_DIR, write_figures
        from .results import write_results

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
        printed = write_results(self.config.out, runs, methods, header, provenance=env, failed=failed)
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


def unique_labels(config: RunConfig, datasets: dict, store: RecordStore) -> dict[str, str]:
    """Each scenario's label: "mnist-5k-5" for npz:…/mnist-5k.npz, unless another data file holds
    that label (in this command, or in the records under --out): then the file's label carries a
    short hash of its path, "mnist-5k-3fa2c1-5", and the console says so."""
    import hashlib

    from scenarios import scenario_label

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


@dataclass(frozen=True)
class CellPlan:
    """A cell to run: its scenario name, settings, reuse key and checkpoint path."""
    name: str
    cell: Cell
    settings: dict
    key: dict
    checkpoint: str


def check_names(config: RunConfig) -> tuple[RunConfig, torch.device]:
    """Every name and value of ``config`` that can be checked without data: ConfigError naming the
    first wrong one. Returns the config with its defaults resolved (thread count, GPUs per cell)
    and the device."""
    from baselines import check_options, get_method, parse_option
    from baselines._backbones import BACKBONES
    from ctrl_bench.device import resolve_device
    from scenarios import registry

    from . import grid
    from .presets import common_settings

    config.check()
    try:
        for name in config.scenarios:
            registry.check_scenario(name, config.n_experiences)
        for method in config.methods:
            get_method(method)
        for method, options in config.method_options.items():
            for option, value in options.items():
                parse_option(f"{method}.{option}={value}")  # the name, for a config built in Python
            check_options(method, options)
        device = resolve_device(config.device)
        config = resolved(config, device)
        common = common_settings(config.preset, config.overrides)
        if common["backbone"] not in BACKBONES:
            raise ValueError(f"unknown backbone {common['backbone']!r}")
        if "ctrl" in config.methods and common["backbone"] == "mlp":
            raise ValueError("ctrl needs an autoencoder backbone: use --backbone conv or crate")
        check_out(config.out)
        if config.grid is not None:
            grid.check(config.grid, device)
        if config.distributed:
            check_distributed(config)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return config, device


def check_distributed(config: RunConfig) -> None:
    """--distributed: under torchrun, without a grid, and only for methods that split a batch."""
    from baselines import get_method
    from ctrl_bench.distributed import from_environment

    if config.grid is not None:
        raise ValueError("--distributed runs one cell over several processes; it does not combine with --workers or "
                         "--ray-address")
    if from_environment() is None:
        raise ValueError("--distributed needs the processes torchrun starts: torchrun --nproc_per_node N -m ctrl_bench "
                         "… --distributed")
    for method in config.methods:
        if not getattr(get_method(method), "DISTRIBUTED", False):
            raise ValueError(f"--distributed runs methods whose loss is computed on the whole batch across processes "
                             f"(ctrl); {method} cannot: run it without --distributed")


def resolved(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with what it leaves open filled in: the torch thread count (a grid cell runs
    int(CPUs per cell)) and the GPUs per grid cell (1 on CUDA, else 0)."""
    grid = config.grid
    if grid is not None and grid.gpus_per_cell is None:
        grid = dataclasses.replace(grid, gpus_per_cell=1.0 if device.type == "cuda" else 0.0)
    threads = config.threads
    if threads is None:
        threads = max(1, int(grid.cpus_per_cell)) if grid is not None else torch.get_num_threads()
    return dataclasses.replace(config, threads=threads, grid=grid)


def check_out(out: str) -> None:
    """``--out`` can be created and written, checked before anything is created: every name in it a
    valid length, the nearest existing folder on its path a folder, writable."""
    path = os.path.abspath(out)
    for part in path.split(os.sep):
        if len(part.encode()) > 255:
            raise ValueError(f"--out: the name {part[:20]}… is {len(part.encode())} bytes long; a folder name can "
                             "have at most 255")
    if len(path.encode()) > 3000:
        raise ValueError(f"--out is {len(path.encode())} bytes long; give a shorter path (at most 3000 bytes, "
                         "leaving room for the records and checkpoints under it)")
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "--out" if existing == path else f"--out {out}: {existing}"
        raise ValueError(f"{what} is a file; give a folder (it is created if missing)")
    try:
        import tempfile
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write in {existing} ({err.strerror or err}); give a folder you can "
                         "write to") from None
    for sub in ("records", "checkpoints", "figures", "tensorboard", "judges"):
        folder = os.path.join(path, sub)
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: {folder} is not writable; the results of every command are rewritten there")


def check_data_fits(config: RunConfig, datasets: dict) -> None:
    """The images of every scenario fit the networks the command builds (DataError saying what fits)."""
    from baselines import get_method
    from ctrl_bench.autoencoder import check_image_shape

    from .presets import common_settings

    judged = any(getattr(get_method(m), "DECODES_MEMORY", False) for m in config.methods)
    for name, data in datasets.items():
        common = common_settings(config.preset, config.overrides, data.family)
        x = data.arrays[0]
        shape = (1, *x.shape[1:3]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])
        try:
            if common["backbone"] in ("conv", "crate"):
                check_image_shape(common["backbone"], common["size"], shape)
            if judged and min(shape[1:]) < 16:
                raise ValueError(f"the replay judge of ctrl takes images of at least 16 × 16 pixels, not "
                                 f"{shape[1]} × {shape[2]}")
        except ValueError as err:
            raise DataError(f"{name}: {err}") from None


def clean_leftovers(out: str) -> None:
    """What interrupted commands left: half-written ``.tmp-*`` files (no command is writing: we hold
    the lock) and checkpoints of cells whose run finished (its record names the checkpoint's key)."""
    from .checkpoint import TMP_PREFIX
    from .records import read_record, short_hash

    for folder, dirs, files in os.walk(out, followlinks=False):
        for name in files:
            if name.startswith(TMP_PREFIX):
                os.remove(os.path.join(folder, name))
    root = os.path.join(out, "checkpoints")
    store = RecordStore(out)
    for folder, _, files in os.walk(root, followlinks=False):
        for name in files:
            if not name.endswith(".pt"):
                continue
            where, _, key = name[:-3].rpartition("-")
            record_path = os.path.join(out, "records", os.path.relpath(folder, root), where + ".json")
            record, why = read_record(record_path) if os.path.isfile(record_path) else (None, "none")
            if record is not None and isinstance(record.get("reuse_key"), dict) \
                    and short_hash(record["reuse_key"])[:10] == key:
                store.remove_checkpoint(os.path.join(folder, name))


def load_datasets(config: RunConfig) -> dict:
    """Read and check every data set (labels, class order, experiences) before anything is written."""
    from scenarios.npz import MalformedNpzError
    from scenarios.registry import DataMissingError, load_data

    try:
        return {name: load_data(name, config.n_experiences, config.class_order, config.data_root,
                                download=config.download, validation=config.validation,
                                first_classes=config.first_experience_classes) for name in config.scenarios}
    except (DataMissingError, MalformedNpzError, FileNotFoundError, ValueError) as err:
        raise DataError(str(err)) from None


def run(config: RunConfig) -> RunOutcome:
    """Run or reuse every cell of ``config``; write the results files and figures; return what
    happened. Raises :class:`ConfigError` (bad names or values) or :class:`DataError` before
    anything is written, and :class:`BenchInterrupted` on Ctrl-C."""
    from . import grid

    from contextlib import nullcontext

    from ctrl_bench import distributed

    from .lock import out_lock

    config, device = check_names(config)
    datasets = load_datasets(config)
    check_data_fits(config, datasets)
    main = True
    if config.distributed:
        process = distributed.from_environment()
        if device.type == "cuda":
            device = torch.device("cuda", process.local_rank)
        distributed.initialise(process, device)
        main = process.is_main
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with out_lock(config.out, config.command, wait=config.wait) if main else nullcontext():
            if main:
                clean_leftovers(config.out)
            distributed.barrier()
            if config.grid is not None:  # the same cells on Ray; a failed cell is reported and the others go on
                summary, failed = grid.run_grid(config, device, datasets)
            else:
                summary, failed = run_sequential(config, device, datasets), []
    finally:
        torch.set_num_threads(threads)
    total = sum(len(memories(config, datasets[name], method)) for name in config.scenarios for method in config.methods)
    return RunOutcome(summary, failed, total * len(config.seeds))


def run_sequential(config: RunConfig, device: torch.device, datasets: dict) -> str:
    """Every cell in this process, one after another; the console summary. In a distributed run every
    process runs each cell together (rank 0 decides which, and alone writes anything)."""
    from ctrl_bench import distributed
    from scenarios import make_scenario

    from .replay_judge import ReplayJudgePlugin
    from .runner import run_cell

    bench = Bench(config, device, datasets)
    main = distributed.is_main()

    @functools.lru_cache(maxsize=1)  # the runs of one (scenario, seed) come one after another
    def scenario_for(name: str, seed: int):
        return make_scenario(datasets[name], seed, config.class_order)

    plans = bench.cells if not config.distributed else distributed.broadcast(
        [(name, cell, bench.plan(name, cell) if main else None) for name, cell in bench.cells])
    running = None
    try:
        for entry in plans:
            name, cell = entry[0], entry[1]
            plan = entry[2] if config.distributed else bench.plan(name, cell)
            if plan is None:
                continue
            running = cell
            judge = bench.judge(name, cell.method) if main else None
            record = run_cell(cell.method, cell.seed, scenario_for(name, cell.seed), plan.settings, device,
                              plan.checkpoint, bench.store.tensorboard_dir(cell) if main else None,
                              progress=config.progress and main, label=str(cell),
                              extra_plugins=[ReplayJudgePlugin(judge)] if judge is not None else [])
            if main:
                bench.finish(plan, record)
                bench.write()
            distributed.barrier()
            running = None
        if not main:
            return ""
    except KeyboardInterrupt as err:
        stopped = ""
        if running is not None and isinstance(err, RunInterrupted):
            stopped = f"; {running} stopped after {err.finished} of {err.total} experiences"
            if err.finished:
                stopped += " (checkpoint kept)"
        raise BenchInterrupted(bench.interrupted(stopped)) from None
    return bench.write(figures=True)
