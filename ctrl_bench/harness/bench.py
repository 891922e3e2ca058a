"""methods × scenarios × seeds, reusing the records that are still valid; the body of run_bench.py."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch

from scenarios import make_scenario

from . import provenance
from .records import Cell, RecordStore, decide, reuse_key
from .plots import FIGURES_TB_DIR, write_figures
from .replay_judge import ReplayJudgePlugin, load_or_train_judge
from .results import ORACLE_MARK, write_results
from .runner import RunInterrupted, make_evaluator, run_method


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_all`; the message says what finished and how to resume."""


def run_settings(args, config: dict, n_experiences: int, device: torch.device, method_options: dict) -> dict:
    """Everything besides data, code and seed that a run's numbers depend on (part of its reuse key);
    ``method_options``: the method's own ``--option`` values (only these, so that an option of one
    method never invalidates another's records)."""
    settings = {"preset": args.preset, "n_experiences": n_experiences, "fixed_class_order": args.class_order,
                "threads": args.threads, "device_type": device.type, "config": config}
    if method_options:
        settings["method_options"] = method_options
    return settings


class Bench:
    """What the cells of one command share (provenance, the record store, data hashes, code
    versions), and the steps around running one cell: whether to run it (:meth:`plan`, which says
    so on the console) and its record once it ran (:meth:`finish`). :func:`run_all` runs the cells
    one after another; :func:`ctrl_bench.harness.grid.run_grid` on Ray."""

    def __init__(self, args, configs: dict, device: torch.device, datasets: dict, command: str,
                 options: dict | None = None):
        from run_bench import scenario_label

        self.args, self.configs, self.device, self.datasets = args, configs, device, datasets
        self.options = options or {}
        self.env = provenance.environment(device, command)
        self.store = RecordStore(args.out)
        self.this_command: dict[str, str] = {}  # record path → "ran" | "reused"
        self.cells = [(name, Cell(scenario_label(name, args.n_experiences), method, seed))
                      for name in args.scenario for seed in args.seeds for method in args.methods]
        self.data_hashes = {name: provenance.data_hash(data.files) for name, data in datasets.items()}
        self.code_versions = {method: provenance.code_version(method) for method in args.methods}
        self._judges: dict[str, torch.nn.Module] = {}

    def plan(self, name: str, cell: Cell) -> CellPlan | None:
        """None when the cell's record is reused; else its settings, reuse key and checkpoint (the
        cell's checkpoints of other keys are deleted)."""
        args, data = self.args, self.datasets[name]
        settings = run_settings(args, self.configs[name], data.n_experiences, self.device,
                                self.options.get(cell.method, {}))
        key = reuse_key(settings, self.data_hashes[name], self.code_versions[cell.method], self.env["device"])
        reuse, why = decide(self.store.load(cell), key, args.reuse)
        if reuse:
            print(f"{cell}: reused ({why})", flush=True)
            self.this_command[self.store.record_path(cell)] = "reused"
            return None
        checkpoint = self.store.checkpoint_path(cell, key)
        self.store.drop_checkpoints(cell, keep=None if args.reuse == "never" else checkpoint)
        resuming = "resuming from its checkpoint, " if os.path.exists(checkpoint) else ""
        print(f"{cell}: running ({resuming}{why})", flush=True)
        return CellPlan(name, cell, settings, key, checkpoint)

    def finish(self, plan: CellPlan, record: dict, torch_threads: int | None = None) -> None:
        """Save the record of a cell that ran (with its provenance; ``torch_threads``: the count the
        cell ran with, when another process ran it) and delete its checkpoint."""
        env = self.env if torch_threads is None else {**self.env, "torch_threads": torch_threads}
        record.update(reuse_key=plan.key, provenance={**env, "data_sha256": self.data_hashes[plan.name],
                                                      "code_version": self.code_versions[plan.cell.method],
                                                      "finished_at": provenance.utc_now()})
        self.store.save(plan.cell, record)
        if not self.args.keep_checkpoints and os.path.exists(plan.checkpoint):
            self.store.remove_checkpoint(plan.checkpoint)
        self.this_command[self.store.record_path(plan.cell)] = "ran"

    def judge(self, name: str, method: str):
        """The replay judge of scenario ``name`` for a method that decodes its memory
        (``DECODES_MEMORY`` in its module), else None; trained once, cached under --out/judges."""
        from baselines import get_method

        if not getattr(get_method(method), "DECODES_MEMORY", False):
            return None
        if name not in self._judges:
            cache = os.path.join(self.args.out, "judges", f"{self.data_hashes[name][:16]}.pt")
            self._judges[name] = load_or_train_judge(cache, self.datasets[name], self.device)
        return self._judges[name]

    def write(self, figures: bool = False, failed: list[dict] | None = None) -> str:
        return _write(self.args, self.store, self.this_command, self.env, figures=figures, failed=failed)


@dataclass(frozen=True)
class CellPlan:
    """A cell to run: its scenario name, settings, reuse key and checkpoint path."""
    name: str
    cell: Cell
    settings: dict
    key: dict
    checkpoint: str


def run_all(args, configs: dict, device: torch.device, datasets: dict, command: str, options: dict | None = None) -> str:
    """Run or reuse every (scenario, method, seed) of ``args``; write the results files and figures;
    return the console summary. ``datasets``: checked :class:`scenarios.ScenarioData` by scenario
    name; ``options``: each method's own ``--option`` values, by method."""
    bench = Bench(args, configs, device, datasets, command, options)

    @functools.lru_cache(maxsize=1)  # the runs of one (scenario, seed) come one after another
    def scenario_for(name: str, seed: int):
        return make_scenario(datasets[name], seed, args.class_order)

    running = None
    try:
        for name, cell in bench.cells:
            plan = bench.plan(name, cell)
            if plan is None:
                continue
            running = cell
            record = _run(args, configs[name], device, scenario_for(name, cell.seed), cell, bench.store,
                          plan.checkpoint, plan.settings, bench.judge(name, cell.method))
            bench.finish(plan, record)
            running = None
            bench.write()
    except KeyboardInterrupt as err:
        raise BenchInterrupted(_interrupted(args, len(bench.this_command), len(bench.cells), running, err)) from None
    return bench.write(figures=True)


def _run(args, config: dict, device, scenario, cell: Cell, store: RecordStore, checkpoint: str,
         settings: dict, judge=None) -> dict:
    """One cell; with a ``judge``, the decoded memory is scored after every experience and the last
    score is the record's ``replay_accuracy``."""
    from baselines import MethodContext, get_method, memory_budget, memory_floats, oracle

    ctx = MethodContext(
        image_shape=scenario.image_shape, n_classes=scenario.n_classes, device=device,
        evaluator=make_evaluator(store.tensorboard_dir(cell)), backbone=config["backbone"], size=config["size"],
        feature_dim=config["feature_dim"], epochs=config["epochs"], batch_size=config["batch_size"],
        eval_batch_size=config["eval_batch_size"], lr=config["lr"], mem_size=config["mem_size"],
        options={"ctrl": config["ctrl"], "n_experiences": len(scenario.train_sizes),
                 **settings.get("method_options", {})},
    )
    module = get_method(cell.method)
    judging = [ReplayJudgePlugin(judge)] if judge is not None else []
    result = run_method(module.build, ctx, scenario, checkpoint, cell.seed, progress=not args.no_progress,
                        label=str(cell), state_attributes=getattr(module, "STATE_ATTRIBUTES", ()),
                        extra_plugins=judging)
    strategy = result.pop("strategy")
    record = {"method": cell.method, "seed": cell.seed, "scenario": cell.scenario, **result,
              "class_order": scenario.class_order, "experience_classes": scenario.experience_classes,
              "memory_budget": memory_budget(cell.method, ctx, strategy),
              "memory_floats": memory_floats(cell.method, ctx, strategy), "oracle": oracle(cell.method, ctx, strategy),
              "device": provenance.device_name(device), "preset": args.preset, "settings": settings}
    if cell.method == "ctrl":
        record["classifier_protocol"] = strategy.classifier_protocol
    if judging and judging[0].last is not None:
        record["replay_accuracy"] = judging[0].last["mean"]
        record["replay_accuracy_per_class"] = judging[0].last["per_class"]
    return record


def _write(args, store: RecordStore, this_command: dict[str, str], env: dict, figures: bool = False,
           failed: list[dict] | None = None) -> str:
    """The results files from every record under --out (and, with ``figures``, the figures);
    ``failed``: the cells of this command that failed (a grid run), each with its error."""
    records, unreadable = store.all_records()
    for path in unreadable:
        print(f"warning: {path} is not a complete record; left out of the results", flush=True)
    runs = [{**record, "source": this_command.get(path, "earlier")} for path, record in records.items()]
    header = [f"written by: `{env['command']}` at {provenance.utc_now()}",
              f"code: git commit {env['git_commit']}",
              f"software: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
              f"avalanche-lib {env['avalanche_lib']}",
              f"device: {env['device']}; torch threads: {env['torch_threads']}",
              "per-run provenance (command, commit, versions, device, threads, data SHA-256, code version, class "
              "order, seconds per experience) is in results.json and results.csv"]
    printed = write_results(args.out, runs, args.methods, header, _notes(runs), provenance=env, failed=failed)
    if figures:
        written = write_figures(args.out, runs, args.methods)
        if written:  # none while no run has a record (every cell of a grid failed)
            printed += f"figures: {', '.join(written)} (and in TensorBoard under {FIGURES_TB_DIR}/)\n"
    return printed


def _notes(runs: list[dict]) -> list[str]:
    from ctrl_bench.strategy import CLASSIFIER_PROTOCOLS
    notes = ["Last: accuracy on all classes after the final experience; Avg: mean over experiences of the accuracy "
             "on the classes seen so far (first experience included); mean ± std over the seeds of a row",
             "Source: ran / reused by the command above, or earlier (a record another command left under --out); "
             "runs are pooled into one row only when their settings, data, code and device all match, and a "
             "row named 'method @key' holds records made under other ones (see the Runs table)"]
    notes.append("Memory (floats): numbers a method keeps beyond the model it classifies with, after the last "
                 "experience: a stored image counts C·H·W, a feature statistic its size, a kept model (frozen copy, "
                 "generator) its parameters and float buffers, EWC / SI their importances and anchors")
    protocols = sorted({r["classifier_protocol"] for r in runs if "classifier_protocol" in r})
    notes += [f"ctrl classifier: {CLASSIFIER_PROTOCOLS[p]}" for p in protocols]
    oracles = sorted({(r["method"], r["oracle"]) for r in runs if r.get("oracle")})
    notes += [f"{ORACLE_MARK} {method}: an oracle, not a class-incremental result: {why}" for method, why in oracles]
    return notes


def _interrupted(args, finished: int, total: int, running: Cell | None, err: KeyboardInterrupt) -> str:
    what = f"interrupted: {finished} of {total} runs done (records in {os.path.join(args.out, 'records')})"
    if running is not None and isinstance(err, RunInterrupted):
        what += f"; {running} stopped after {err.finished} of {err.total} experiences"
        if err.finished:
            what += " (checkpoint kept)"
    how = ("rerun the same command without --reuse never to resume" if args.reuse == "never"
           else "rerun the same command to resume")
    return f"{what}. Finished experiences are kept: {how}."
