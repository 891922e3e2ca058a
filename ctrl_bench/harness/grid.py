"""The methods × scenarios × seeds grid on Ray: up to N cells at once (``--workers N``, a local Ray
instance that the run starts and stops) or on an existing cluster (``--ray-address ADDR|auto``).

A *cell* is one (scenario, method, seed): one record, one checkpoint, one TensorBoard run. The
driver (this process) decides which cells to run exactly as the sequential path does
(:class:`.cells.Bench`), ships each one to a Ray task with ``--cpus-per-cell`` CPUs and
``--gpus-per-cell`` GPUs, saves the record it returns and rewrites the results files after every
finished cell. A cell runs ``int(cpus)`` torch threads (at least 1) and is seeded by its seed, so it
gives the numbers of a sequential run with that ``--threads`` on any worker. A cell that fails (an
exception, a NaN, a killed worker) is reported with its error and leaves no record: the same
command runs it again, resuming from its checkpoint. Checkpoints and TensorBoard runs are written
by the worker under the absolute path of ``--out``; on a cluster that folder must be on a file
system every node sees at the same path for them to land there (records and results files are
written by the driver in any case).

Ray is optional (``pip install -e ".[ray]"``); this module imports it only when a grid runs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import socket
import threading
import time

import torch
from tqdm.auto import tqdm

from . import provenance, stopping
from .cells import Bench, BenchInterrupted, CellPlan, execute, silence_warnings
from .config import ConfigError, GridConfig

INSTALL = 'pip install -e ".[ray]"'
POLL_SECONDS = 1.0  # how often the driver looks at its cells (progress bar, Ctrl-C) while none finishes


class GridUnavailable(RuntimeError):
    """Ray could not be started or reached, or the cluster cannot hold a cell."""


def check(grid: GridConfig, device: torch.device) -> None:
    """Ray installed, and GPUs per cell that fit the device (``grid``: a resolved
    :class:`~.config.GridConfig`). ConfigError says what is wrong."""
    try:
        import ray  # noqa: F401  (Ray is an optional extra: only a grid imports it)
    except ImportError:
        flag = "--workers" if grid.ray_address is None else "--ray-address"
        raise ConfigError(f"{flag} needs Ray, which is not installed: {INSTALL}") from None
    if device.type == "cuda" and grid.gpus_per_cell == 0:
        raise ConfigError("--gpus-per-cell 0 with a CUDA device: Ray hides the GPUs from a task that asks for none; "
                          "give a share, e.g. --gpus-per-cell 0.25, or --device cpu")
    if device.type != "cuda" and grid.gpus_per_cell > 0:
        raise ConfigError(f"--gpus-per-cell {grid.gpus_per_cell:g} with device {device.type}: use --device cuda "
                          "(or auto on a machine with a GPU), or leave --gpus-per-cell out")


def work_cell(plan: CellPlan, data, class_order, device, tensorboard_dir: str | None, expect: dict, judge=None,
              wandb_run=None) -> dict:
    """One cell, in a Ray worker: :func:`~.cells.execute` with ``plan.settings["threads"]`` torch
    threads and no progress bars, after checking that this worker has the driver's code and kind of
    device. Returns its record and the thread count it ran with."""
    silence_warnings()
    torch.set_num_threads(plan.settings["threads"])
    found = {"code": provenance.code_version(plan.cell.method), "device": provenance.device_name(device)}
    for what, value in found.items():
        if value != expect[what]:  # both are part of the reuse key the driver gave this cell
            raise RuntimeError(f"this worker's {what} ({value}) is not the driver's ({expect[what]}): every node "
                               "needs the driver's checkout of ctrl-bench, unedited while the grid runs, and its "
                               "kind of device")
    record = execute(plan, data, class_order, device, judge, tensorboard_dir, progress=False, wandb_run=wandb_run)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"record": record, "torch_threads": torch.get_num_threads()}


def run_grid(bench: Bench) -> tuple[str, list[dict]]:
    """Run or reuse every cell of ``bench`` (whose config has a ``grid``) on Ray; write the results
    files as cells finish and, with the figures, at the end. Returns the console summary and the
    failed cells (scenario, method, seed, error, traceback). Ctrl-C stops the running cells and
    raises :class:`.cells.BenchInterrupted`."""
    import ray  # Ray is an optional extra: only a grid imports it

    config, grid = bench.config, bench.config.grid
    plans = list(bench.pending())
    failed: list[dict] = []
    if not plans:
        return bench.write(figures=True, failed=failed), failed
    initialised = ray.is_initialized()
    try:
        connect(grid)
    except KeyboardInterrupt:
        if not initialised and ray.is_initialized():
            ray.shutdown()
        raise BenchInterrupted("interrupted while Ray was starting; no cell ran: rerun the same command") from None
    running: dict = {}  # object ref → plan
    ctrl_c = _CtrlC()
    bar = tqdm(total=len(plans), desc="cells", unit="cell", disable=not config.progress, dynamic_ncols=True)
    try:
        slots = _slots(grid)
        task = ray.remote(work_cell)
        data_refs = {name: ray.put(bench.datasets[name]) for name in {plan.name for plan in plans}}
        judge_refs = {(plan.name, plan.cell.method): ray.put(bench.judge(plan.name, plan.cell.method))
                      for plan in plans}  # trained here, once per data set, before any cell starts
        expect = {method: {"code": code, "device": bench.env["device"]} for method, code in bench.code_versions.items()}
        pending, done = list(plans), 0

        def show(advance: int = 0):
            bar.set_postfix_str(f"done {done}, running {len(running)}, failed {len(failed)}", refresh=not advance)
            bar.update(advance)

        while pending or running:
            ctrl_c.check()
            if pending and len(running) < slots:
                while pending and len(running) < slots:
                    plan = pending.pop(0)
                    absolute = dataclasses.replace(plan, checkpoint=os.path.abspath(plan.checkpoint))
                    ref = task.options(num_cpus=grid.cpus_per_cell, num_gpus=grid.gpus_per_cell, max_retries=0,
                                       name=f"cell {plan.cell}").remote(
                        absolute, data_refs[plan.name], config.class_order, bench.device,
                        bench.tensorboard_dir(plan.cell), expect[plan.cell.method],
                        judge_refs[(plan.name, plan.cell.method)], bench.wandb_run(plan))
                    running[ref] = plan
                show()
            finished, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in finished:
                plan = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001  (any failure of a cell is reported, the others go on)
                    failed.append(_failure(plan.cell, err))
                    bar.write(f"failed: {plan.cell}: {failed[-1]['error']}")
                    bench.write(failed=failed)  # the results files as they stand, atomically
                else:
                    done += 1
                    bench.complete(plan, result["record"], torch_threads=result["torch_threads"], failed=failed)
                    bar.write(f"done: {plan.cell} ({result['record']['wall_seconds']:.0f} s)")
                show(advance=1)
    except KeyboardInterrupt:
        bar.close()
        _stop(list(running), ray)
        raise BenchInterrupted(bench.interrupted(_stopped(list(running.values())))) from None
    finally:
        ctrl_c.restore()
        bar.close()
        if not initialised:
            ray.shutdown()  # stops the local instance this run started; leaves a cluster running
    return bench.write(figures=True, failed=failed), failed


class _CtrlC:
    """Remembers a Ctrl-C that arrives while the driver waits on Ray. Ray checks signals inside
    ``ray.wait`` and can drop the KeyboardInterrupt it raises there; the flag set by this handler
    survives, and ``check()`` raises it on the next pass of the loop. Only in the main thread
    (where Python delivers signals); ``restore()`` puts the previous handler back."""

    def __init__(self):
        self.seen = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def connect(grid: GridConfig) -> None:
    """Start a local Ray instance (--workers) or join a cluster (--ray-address). A process that
    already has Ray initialised keeps its instance (and its Ray stays up after the grid)."""
    import ray  # Ray is an optional extra: only a grid imports it

    if ray.is_initialized():
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if grid.ray_address is not None:
            silent = _silent(grid.ray_address)
            if silent:
                raise ConnectionError(silent)
            ray.init(address=grid.ray_address, **quiet)
        else:
            gpus = torch.cuda.device_count() if grid.gpus_per_cell else 0
            ray.init(address="local", num_cpus=max(1, math.ceil(grid.workers * grid.cpus_per_cell)), num_gpus=gpus,
                     include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {grid.ray_address}" if grid.ray_address else "a local Ray instance"
        hint = " (start one with `ray start --head`)" if grid.ray_address else ""
        raise GridUnavailable(f"could not start or reach {where}{hint}: {str(err).splitlines()[0]}") from None
    stopping.install()  # Ray's native SIGTERM handler dumps a stack and aborts: ours stops cleanly instead


def _silent(address: str) -> str | None:
    """Why nothing answers at a cluster's address (Ray itself retries such an address for minutes),
    or None when something does or the address cannot be checked here."""
    try:  # Ray is an optional extra: only a grid imports it; "auto" → the address `ray start` left
        from ray._private.services import canonicalize_bootstrap_address
        target = address if address.startswith("ray://") else canonicalize_bootstrap_address(address)
    except Exception:  # noqa: BLE001  (Ray's own errors then say what is wrong)
        return None
    host, sep, port = (target or "").removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        return f"nothing answers at {host}:{port} ({err.strerror or err})"
    return None


def _slots(grid: GridConfig) -> int:
    """Cells in flight at once: --workers, and no more than the cluster's CPUs and GPUs hold."""
    import ray  # Ray is an optional extra: only a grid imports it

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    fits = [n for n in nodes if n.get("CPU", 0) >= grid.cpus_per_cell and n.get("GPU", 0) >= grid.gpus_per_cell]
    if not fits:
        raise GridUnavailable(f"no node of the Ray cluster has {grid.cpus_per_cell:g} CPUs and {grid.gpus_per_cell:g} "
                              "GPUs for a cell; lower --cpus-per-cell / --gpus-per-cell")
    total = ray.cluster_resources()
    slots = math.floor(total.get("CPU", 0) / grid.cpus_per_cell + 1e-9)
    if grid.gpus_per_cell:
        slots = min(slots, math.floor(total.get("GPU", 0) / grid.gpus_per_cell + 1e-9))
    return max(1, min(slots, grid.workers) if grid.workers else slots)


def _failure(cell, err: Exception) -> dict:
    """A failed cell for the results: a one-line error (the cell's own exception when it raised one)
    and the whole report (with the worker's traceback)."""
    from ray.exceptions import RayTaskError  # Ray is an optional extra: only a grid imports it

    cause = err.cause if isinstance(err, RayTaskError) and err.cause is not None else err
    lines = str(cause).strip().splitlines()
    name = type(cause).__name__
    return {"scenario": cell.scenario, "method": cell.method, "seed": cell.seed,
            "error": f"{name}: {lines[0]}" if lines else name, "traceback": str(err)}


def _stop(refs: list, ray) -> None:
    """Cancel the running cells (their workers are killed: checkpoints are written atomically, so the
    last finished experience is on disk) and wait until Ray says they stopped. Cells that have
    already finished are left alone: force-cancelling a task whose result is arriving aborts the
    driver in Ray 2.60 ("Check failed: ... Tried to complete task that was not pending")."""
    if refs:
        _, refs = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in refs:
        ray.cancel(ref, force=True)
    deadline = time.monotonic() + 30
    remaining = list(refs)
    while remaining and time.monotonic() < deadline:
        _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=1.0)


def _stopped(plans: list) -> str:
    """What the Ctrl-C line says of the cells that were running."""
    if not plans:
        return ""
    return "; stopped: " + ", ".join(
        f"{plan.cell} ({'checkpoint kept' if os.path.exists(plan.checkpoint) else 'no experience finished'})"
        for plan in plans)
