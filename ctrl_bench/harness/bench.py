"""methods × scenarios × seeds from a :class:`~.config.RunConfig`, reusing the records that are still
valid: :func:`run` checks the configuration, reads the data, and runs the cells (:mod:`.cells`) one
after another, over the processes of a distributed run, or on Ray (:mod:`.grid`)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from baselines import COMMON_RANGES, MethodError, check_options, check_range, declared, get_method, parse_option
from baselines._backbones import BACKBONES
from ctrl_bench import distributed
from ctrl_bench.autoencoder import check_image_shape
from ctrl_bench.device import DeviceError, resolve_device
from scenarios import DataMissingError, ScenarioError, load_data
from scenarios.registry import check_scenario

from . import grid
from .atomic import TMP_PREFIX
from .budget import MAX_CHECKS, PROBE_EPOCHS, ProbeFailed, fitted_epochs, measured_points, probe_config
from .cells import BenchInterrupted, Bench, DataError, memories, run_in_process
from .config import ConfigError, RunConfig
from .lock import out_lock
from .presets import common_settings
from .records import RecordStore, read_record, short_hash

__all__ = ["BenchInterrupted", "ConfigError", "DataError", "ProbeFailed", "RunOutcome", "run"]

JUDGE_MIN_SIDE = 16  # the replay judge's network takes images of at least this many pixels a side


@dataclass
class RunOutcome:
    """What a command did: the console summary, and the cells that failed (a grid run)."""

    summary: str
    failed: list[dict]
    total: int


def check_names(config: RunConfig) -> None:
    """Every name and value of ``config`` that can be checked without data or devices: ConfigError
    naming the first wrong one."""
    config.check()
    try:
        for name in config.scenarios:
            check_scenario(name, config.n_experiences)
        for method in (*config.methods, *([config.reference] if config.reference else [])):
            get_method(method)
        for method, options in config.method_options.items():
            for option, value in options.items():
                parse_option(f"{method}.{option}={value}")  # the name, for a config built in Python
            check_options(method, options)
        for name, value in config.overrides.items():  # a RunConfig built in Python skips the flags' own checks
            if name in COMMON_RANGES:
                check_range("", f"--{name.replace('_', '-')}", value, *COMMON_RANGES[name])
    except (ScenarioError, MethodError, ValueError) as err:
        raise ConfigError(str(err)) from None
    backbone = common_settings(config.preset, config.overrides)["backbone"]
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    for method in config.methods:
        fits = declared(method, "BACKBONES")
        if backbone not in fits:
            raise ConfigError(f"{method} is built on a backbone of {' or '.join(fits)}, not {backbone}: use "
                              f"--backbone {fits[0]}")
    if config.distributed:
        check_distributed(config)


def check_distributed(config: RunConfig) -> None:
    """--distributed: under torchrun, without a grid, and only for methods that split a batch."""
    if config.grid is not None:
        raise ConfigError("--distributed runs one cell over several processes; it does not combine with --workers "
                          "or --ray-address")
    if distributed.from_environment() is None:
        raise ConfigError("--distributed needs the processes torchrun starts: torchrun --nproc_per_node N -m "
                          "ctrl_bench … --distributed")
    able = [m for m in config.methods if declared(m, "DISTRIBUTED")]
    for method in config.methods:
        if method not in able:
            raise ConfigError(f"--distributed runs methods whose loss is computed on the whole batch across "
                              f"processes (DISTRIBUTED in their module); {method} is not one: run it without "
                              "--distributed")


def resolved(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with what it leaves open filled in: the torch thread count and the grid's CPUs and
    GPUs per cell. A grid cell runs int(CPUs per cell) torch threads, at least 1, which is then its
    thread count; without ``cpus_per_cell`` a cell gets ``threads`` CPUs, or 1. GPUs per cell: 1 on
    CUDA, else 0. ConfigError when threads and CPUs per cell disagree."""
    grid_config, threads = config.grid, config.threads
    if grid_config is None:
        return dataclasses.replace(config, threads=threads or torch.get_num_threads())
    cpus = grid_config.cpus_per_cell if grid_config.cpus_per_cell is not None else float(threads or 1)
    if threads is not None and threads != max(1, int(cpus)):
        raise ConfigError(f"--threads {threads} disagrees with --cpus-per-cell {cpus:g}: a cell runs int(CPUs per "
                          f"cell) = {max(1, int(cpus))} torch threads; give one of the two")
    gpus = grid_config.gpus_per_cell
    if gpus is None:
        gpus = 1.0 if device.type == "cuda" else 0.0
    grid_config = dataclasses.replace(grid_config, cpus_per_cell=cpus, gpus_per_cell=gpus)
    return dataclasses.replace(config, threads=max(1, int(cpus)), grid=grid_config)


def check_out(out: str) -> None:
    """``--out`` can be created and written, checked before anything is created: every name in it a
    valid length, the nearest existing folder on its path a folder, writable."""
    path = os.path.abspath(out)
    for part in path.split(os.sep):
        if len(part.encode()) > 255:
            raise ConfigError(f"--out: the name {part[:20]}… is {len(part.encode())} bytes long; a folder name can "
                              "have at most 255")
    if len(path.encode()) > 3000:
        raise ConfigError(f"--out is {len(path.encode())} bytes long; give a shorter path (at most 3000 bytes, "
                          "leaving room for the records and checkpoints under it)")
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "--out" if existing == path else f"--out {out}: {existing}"
        raise ConfigError(f"{what} is a file; give a folder (it is created if missing)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write in {existing} ({err.strerror or err}); give a folder you can "
                          "write to") from None
    for sub in ("records", "checkpoints", "figures", "tensorboard", "judges"):
        folder = os.path.join(path, sub)
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: {folder} is not writable; the results of every command are rewritten "
                              "there")


def check(config: RunConfig) -> tuple[RunConfig, torch.device]:
    """Everything about ``config`` that can be checked without data, before anything is written:
    names and values, the device, the thread count, --out, Ray. Returns the resolved config and the
    device; ConfigError names the first problem."""
    check_names(config)
    try:
        device = resolve_device(config.device)
    except DeviceError as err:
        raise ConfigError(str(err)) from None
    config = resolved(config, device)
    check_out(config.out)
    if config.grid is not None:
        grid.check(config.grid, device)
    return config, device


def check_data_fits(config: RunConfig, datasets: dict) -> None:
    """The images of every scenario fit the networks the command builds (DataError saying what fits)."""
    judged = [m for m in config.methods if declared(m, "DECODES_MEMORY")]
    for name, data in datasets.items():
        common = common_settings(config.preset, config.overrides, data.family)
        x = data.arrays[0]
        shape = (1, *x.shape[1:3]) if x.ndim == 3 else (x.shape[3], *x.shape[1:3])
        if common["backbone"] in ("conv", "crate"):
            try:
                check_image_shape(common["backbone"], common["size"], shape)
            except ValueError as err:
                raise DataError(f"{name}: {err}") from None
        if judged and min(shape[1:]) < JUDGE_MIN_SIDE:
            raise DataError(f"{name}: the replay judge that scores the decoded memory of {', '.join(judged)} takes "
                            f"images of at least {JUDGE_MIN_SIDE} × {JUDGE_MIN_SIDE} pixels, not {shape[1]} × "
                            f"{shape[2]}")


def clean_leftovers(out: str) -> None:
    """What interrupted commands left: half-written ``.tmp-*`` files (no command is writing: we hold
    the lock) and checkpoints of cells whose run finished (its record names the checkpoint's key)."""
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
    try:
        return {name: load_data(name, config.n_experiences, config.class_order, config.data_root,
                                download=config.download, validation=config.validation,
                                first_classes=config.first_experience_classes) for name in config.scenarios}
    except (DataMissingError, ScenarioError, FileNotFoundError) as err:
        raise DataError(str(err)) from None


def run_cells(bench: Bench) -> tuple[str, list[dict]]:
    """Run or reuse the cells of ``bench``: on Ray with a grid (a failed cell is reported and the
    others go on), else in this process. Returns the console summary and the failed cells."""
    if bench.config.grid is not None:
        return grid.run_grid(bench)
    return run_in_process(bench), []


def measure_budgets(config: RunConfig, device: torch.device, datasets: dict, main: bool) -> dict:
    """--budget-flops: run (or reuse) the FLOPs probes of every method (:mod:`.budget`: the line's two,
    then the checks at the guessed epochs) and return the epochs that fit in each budget,
    {(scenario name, method, memory, F): epochs}."""
    probes = probe_config(config)
    if main:
        print(f"--budget-flops: measuring each method's training FLOPs at {' and '.join(map(str, PROBE_EPOCHS))} "
              f"epochs per experience, then at the epochs that fit (seed {probes.seeds[0]}; records in {probes.out})",
              flush=True)
    bench = Bench(probes, device, datasets, judges_dir=os.path.join(config.out, "judges"))
    line_cells = bench.cells
    measured = list(line_cells)
    fitted = {}
    for _ in range(MAX_CHECKS + 1):
        run_cells(bench)
        wanted, refused = {}, None
        if main:
            try:
                fitted, wanted = fitted_epochs(config, measured_points(bench.store, measured))
            except (ConfigError, ProbeFailed) as err:
                refused = (isinstance(err, ConfigError), str(err))
        fitted, wanted, refused = distributed.broadcast((fitted, wanted, refused))
        if refused is not None:
            bad_budget, message = refused
            raise (ConfigError if bad_budget else ProbeFailed)(message)
        bench.cells = [(name, dataclasses.replace(cell, epochs=e)) for name, cell in line_cells
                       if cell.epochs == PROBE_EPOCHS[0]
                       for e in sorted(wanted.get((name, cell.method, cell.memory), ()))]
        if not bench.cells:
            break
        measured += bench.cells
    if main:
        for (name, method, memory, flops), epochs in fitted.items():
            shown = f" ({memory} images)" if memory is not None else ""
            print(f"  {bench.labels[name]} {method}{shown}: {epochs} epochs per experience fit in {flops:.3g} FLOPs",
                  flush=True)
    return fitted


def finished(config: RunConfig, datasets: dict | None = None) -> bool:
    """Whether :func:`run` would reuse every cell of ``config`` (and its results files are written):
    it would train nothing. Reads the records and the data (unless given, as :func:`load_datasets`
    returns it); writes nothing."""
    if not os.path.exists(os.path.join(config.out, "results.json")):
        return False
    config, device = check(config)
    bench = Bench(config, device, datasets if datasets is not None else load_datasets(config))
    return all(bench.reuse_decision(name, cell)[0] for name, cell in bench.cells)


def run(config: RunConfig) -> RunOutcome:
    """Run or reuse every cell of ``config``; write the results files and figures; return what
    happened. Raises :class:`ConfigError` (bad names or values) or :class:`DataError` before
    anything is written, and :class:`BenchInterrupted` on Ctrl-C."""
    config, device = check(config)
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
            fitted = measure_budgets(config, device, datasets, main) if config.budget_flops else None
            bench = Bench(config, device, datasets, fitted)
            summary, failed = run_cells(bench)
    finally:
        torch.set_num_threads(threads)
    return RunOutcome(summary, failed, len(bench.cells))
