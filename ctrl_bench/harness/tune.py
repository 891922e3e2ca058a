"""``ctrl-bench tune``: the same search for every method, on a validation split only.

Every method gets the same number of trials, the same budget per trial (the command's preset and
flags), the same seeds and the same search: trial 0 is the method's defaults, trials 1 … N−1 are
drawn at random from its search space (:func:`baselines.search_space`: the shared options and its
own ``SEARCH_SPACE``) with Ray Tune's distributions, each option from its own generator seeded by
``--search-seed`` and the option's name, so that two methods with the same range of an option try
the same values of it. Ray Tune runs the trials (``--workers`` at once, or on ``--ray-address``);
each trial is an ordinary command into ``--out/trials/<method>/<settings hash>``, whose records a
rerun reuses: a killed tune, run again, reruns no finished trial, and hands Ray only the trials
that have a cell left to run. The score of a trial is its mean
validation Last over the seeds; the test split is never loaded (the command must have
``--validation``).

Writes ``tuned.json`` (per method the chosen settings, their validation Last, every trial), the
table ``tuning.md`` and the figure ``tuning.png`` (validation Last against trial).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zlib

import numpy as np
from matplotlib.figure import Figure

from baselines import search_space
from scenarios import scenario_label

from .atomic import atomic_write_bytes, atomic_write_set
from .bench import finished, load_datasets, run
from .config import ConfigError, GridConfig, RunConfig
from .grid import GridUnavailable, connect
from .plots import png_bytes
from .records import short_hash
from .provenance import git_commit

TUNED_FILE, TABLE_FILE, FIGURE_FILE, TRIALS_DIR = "tuned.json", "tuning.md", "tuning.png", "trials"
FAILED_FILE = "failed.json"  # in a trial's folder: the error of settings the method cannot train with (a NaN, say)
TUNED_FORMAT = 1


def check_tune(config: RunConfig, trials: int) -> None:
    """ConfigError for a tune that could read test data or that has no single cell per seed."""
    if config.validation is None:
        raise ConfigError("tune chooses settings on a validation split only: give --validation F (e.g. 0.1)")
    if len(config.scenarios) != 1:
        raise ConfigError(f"tune searches on one scenario, got {len(config.scenarios)}: give one --scenario")
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    for flag, given in (("--mem-size", len(config.mem_sizes) > 1), ("--memory-floats", config.memory_floats),
                        ("--epochs with several values", config.epochs_values), ("--budget-flops", config.budget_flops),
                        ("--settings", config.tuned)):
        if given:
            raise ConfigError(f"tune runs one budget per method: it does not take {flag}")


def draw_trials(space: dict[str, tuple], trials: int, seed: int) -> list[dict]:
    """Trial 0: {} (the method's defaults); trials 1 … trials−1: one value of every option of
    ``space``, option by option from ``numpy.random.default_rng([seed, crc32(name)])``."""
    from ray import tune  # Ray is an optional extra: only tune imports it

    kinds = {"log": lambda lo, hi: tune.loguniform(lo, hi), "uniform": lambda lo, hi: tune.uniform(lo, hi),
             "int": lambda lo, hi: tune.randint(lo, hi + 1), "choice": lambda values: tune.choice(list(values))}
    drawn = [{} for _ in range(trials)]
    for name, spec in space.items():
        domain = kinds[spec[0]](*spec[1:])
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        values = [domain.sample(random_state=rng) for _ in range(trials - 1)]
        for settings, value in zip(drawn[1:], values):
            settings[name] = value.item() if isinstance(value, np.generic) else value
    return drawn


def trial_out(out: str, method: str, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(out, TRIALS_DIR, method, digest)


def trial_config(base: RunConfig, method: str, settings: dict, out: str) -> RunConfig:
    """The command a trial runs: ``method`` alone, ``settings`` on top of its --option values, into ``out``."""
    options = {**base.method_options.get(method, {}), **settings}
    return dataclasses.replace(base, methods=(method,), method_options={method: options}, out=out, grid=None,
                               progress=False, reference=None)


def trial_done(base: RunConfig, method: str, settings: dict, out: str, datasets: dict) -> bool:
    """Whether a trial has nothing left to run: it failed, or every one of its cells has a valid record."""
    return os.path.exists(os.path.join(out, FAILED_FILE)) or finished(trial_config(base, method, settings, out),
                                                                       datasets)


def run_trial(base: RunConfig, method: str, settings: dict, out: str) -> list[float] | None:
    """One trial: ``method`` with ``settings`` on top of its --option values, every seed of ``base``,
    into ``out`` (reusing what a killed tune finished); the validation Last of each seed, or None
    when the method failed with these settings (diverged, say): the error is kept in
    ``out/failed.json``, the trial counts as run and is never chosen, and a rerun does not repeat it."""
    if os.path.exists(os.path.join(out, FAILED_FILE)):
        return None
    config = trial_config(base, method, settings, out)
    try:
        run(config)
    except (RuntimeError, ValueError, FloatingPointError) as err:  # what a method raises when it cannot train
        atomic_write_set({os.path.join(out, FAILED_FILE): json.dumps({"settings": settings, "error": str(err)[:500]})})
        return None
    return trial_scores(base, method, out)


def trial_scores(base: RunConfig, method: str, out: str) -> list[float] | None:
    """The validation Last of each seed of ``base`` from the results a trial wrote into ``out``
    (None for a failed trial)."""
    if os.path.exists(os.path.join(out, FAILED_FILE)):
        return None
    with open(os.path.join(out, "results.json")) as fh:
        runs = json.load(fh)["runs"]
    by_seed = {r["seed"]: r["last_accuracy"] for r in runs if r["method"] == method}
    return [by_seed[seed] for seed in base.seeds]


def _ray_tune(base: RunConfig, left: list[tuple[str, dict]], grid: GridConfig, on_trial) -> None:
    """Run the trials ``left`` ((method, settings) pairs) on one Ray Tune experiment, so that a worker
    goes on to the next method's trials while the last of one method's run; ``on_trial(i, scores)``
    as the i-th of them ends."""
    from ray import tune  # Ray is an optional extra: only tune imports it

    class Progress(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            on_trial(trial.config["trial"], trial.last_result.get("scores"))

    here = os.getcwd()

    def trainable(config):
        if os.path.isdir(here):  # Ray Tune starts a trial in its own folder; the command's paths are relative to this one
            os.chdir(here)
        method, settings = left[config["trial"]]
        scores = run_trial(base, method, settings, trial_out(base.out, method, settings))
        tune.report({"validation_last": float("nan") if scores is None else float(np.mean(scores)), "scores": scores})

    cpus = grid.cpus_per_cell or base.threads or 1
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus}),
        param_space={"trial": tune.grid_search(list(range(len(left))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=grid.workers or 1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=os.path.abspath(os.path.join(base.out, "ray")), name="trials",
                                  verbose=0, callbacks=[Progress()]),
    )
    results = tuner.fit()
    failed = [r for r in results if r.error is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} trial(s) failed: {failed[0].error}; rerun the same command to run them "
                           "again (finished trials are reused)")


def tune_methods(base: RunConfig, trials: int, search_seed: int = 0) -> dict:
    """Tune every method of ``base`` (see the module's docstring); returns what ``tuned.json`` holds."""
    check_tune(base, trials)
    grid = base.grid or GridConfig(workers=1, cpus_per_cell=base.threads or 1)
    # a trial's numbers depend on its torch threads: fixed, so that --settings --threads T reproduces them
    base = dataclasses.replace(base, threads=base.threads or max(1, int(grid.cpus_per_cell or 1)))
    try:
        import ray.tune  # noqa: F401  (Ray is an optional extra: is it installed?)
    except ImportError:
        raise GridUnavailable('tune runs on Ray Tune: pip install -e ".[ray]"') from None
    datasets = load_datasets(base)
    scenario = base.scenarios[0]
    label = scenario_label(scenario, base.n_experiences, base.validation, base.first_experience_classes)
    tuned = {"format": TUNED_FORMAT, "scenario": label, "scenario_name": scenario, "validation": base.validation,
             "n_experiences": base.n_experiences, "preset": base.preset, "seeds": list(base.seeds), "trials": trials,
             "search": f"trial 0 the defaults, then random (seed {search_seed})", "search_seed": search_seed,
             "threads": base.threads, "code_version": git_commit(), "command": base.command, "methods": {}}
    started = time.monotonic()
    spaces = {method: search_space(method) for method in base.methods}
    drawn = {method: draw_trials(space, trials, search_seed) for method, space in spaces.items()}
    done: dict[str, int] = {method: 0 for method in base.methods}
    best: dict[str, float] = {}
    left: list[tuple[str, int]] = []  # (method, trial index) of the trials still to run

    def said(method: str, index: int, values, reused: bool = False) -> None:
        done[method] += 1
        if values is not None:
            best[method] = max(best.get(method, -1.0), float(np.mean(values)))
        what = "failed (see its failed.json)" if values is None else f"validation Last {np.mean(values):.3f}"
        print(f"tune {method}: trial {index}{' (defaults)' if index == 0 else ''} {what}{' (reused)' if reused else ''} "
              f"(best so far {best.get(method, float('nan')):.3f}; {done[method]} of {trials} trials done)", flush=True)

    for method in base.methods:  # a killed tune's finished trials: said, not handed to Ray again
        for index, settings in enumerate(drawn[method]):
            out = trial_out(base.out, method, settings)
            if trial_done(base, method, settings, out, datasets):
                said(method, index, trial_scores(base, method, out), reused=True)
            else:
                left.append((method, index))
    if left:
        _run_on_ray(base, grid, [(m, drawn[m][i]) for m, i in left], lambda k, values: said(*left[k], values),
                    lambda: sum(done.values()), trials * len(base.methods))
    tuned["wall_seconds"] = round(time.monotonic() - started, 1)  # of this command: reused trials cost ~nothing
    for method, space in spaces.items():
        scores = {i: trial_scores(base, method, trial_out(base.out, method, s)) for i, s in enumerate(drawn[method])}
        table = [{"trial": i, "settings": drawn[method][i], "per_seed": scores[i],
                  "validation_last": None if scores[i] is None else _stat(scores[i])} for i in range(trials)]
        ran = [t for t in table if t["validation_last"] is not None]
        if not ran:
            raise RuntimeError(f"every trial of {method} failed; see {os.path.join(base.out, TRIALS_DIR, method)}")
        chosen = max(ran, key=lambda t: (t["validation_last"]["mean"], -t["trial"]))
        tuned["methods"][method] = {"settings": chosen["settings"], "validation_last": chosen["validation_last"],
                                    "chosen_trial": chosen["trial"], "failed_trials": len(table) - len(ran),
                                    "trial_seconds": round(sum(_trial_seconds(base.out, method, s)
                                                               for s in drawn[method]), 1),
                                    "space": {k: list(v) for k, v in space.items()}, "trials": table}
    write_tuning(base.out, tuned)
    return tuned


class TuneInterrupted(KeyboardInterrupt):
    """SIGTERM or Ctrl-C during a tune; the message says which trials finished and how to go on."""


def _run_on_ray(base: RunConfig, grid: GridConfig, left: list[tuple[str, dict]], on_trial, finished_count,
                total: int) -> None:
    """:func:`_ray_tune` on the instance :func:`.grid.connect` gives; a stop shuts down the Ray it
    started and raises :class:`TuneInterrupted`."""
    import ray  # Ray is an optional extra: only tune imports it

    started_here = not ray.is_initialized()
    try:
        connect(grid)
        _ray_tune(base, left, grid, on_trial)
    except KeyboardInterrupt:
        raise TuneInterrupted(f"interrupted: {finished_count()} of {total} trials finished, kept under "
                              f"{os.path.join(base.out, TRIALS_DIR)}; rerun the same command to go on (finished "
                              "trials are reused)") from None
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()


def _trial_seconds(out: str, method: str, settings: dict) -> float:
    """The wall seconds a trial's runs took when they ran (from their records; 0 for a failed trial)."""
    folder = os.path.join(trial_out(out, method, settings), "records")
    total = 0.0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".json"):
                with open(os.path.join(dirpath, name)) as fh:
                    total += json.load(fh).get("wall_seconds") or 0.0
    return total


def _stat(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}  # population std, as the tables


def tuning_table(tuned: dict) -> str:
    """tuning.md: per method its chosen settings, then every trial's settings and score."""
    lines = [f"# Tuning on {tuned['scenario']} (validation {tuned['validation']:g}, seeds "
             f"{' '.join(map(str, tuned['seeds']))}, {tuned['trials']} trials per method)", "",
             f"Search: {tuned['search']}. Code: {tuned['code_version']}.", "",
             "| Method | chosen trial | validation Last | failed trials | trials' run time (s) | settings |",
             "|---|---|---|---|---|---|"]
    for method, entry in tuned["methods"].items():
        lines.append(f"| {method} | {entry['chosen_trial']} | {_pm(entry['validation_last'])} | {entry['failed_trials']} | "
                     f"{entry['trial_seconds']:,.0f} | {_settings_text(entry['settings'])} |")
    for method, entry in tuned["methods"].items():
        lines += ["", f"## {method}", "", "| trial | validation Last | settings |", "|---|---|---|"]
        lines += [f"| {t['trial']} | {_pm(t['validation_last'])} | {_settings_text(t['settings'])} |"
                  for t in entry["trials"]]
    return "\n".join(lines) + "\n"


def _pm(stat: dict | None) -> str:
    return "failed" if stat is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()) or "defaults"


def tuning_figure(tuned: dict):
    """Validation Last (mean over seeds) against trial, one line per method, its best so far dashed."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for i, (method, entry) in enumerate(tuned["methods"].items()):
        means = np.array([np.nan if t["validation_last"] is None else t["validation_last"]["mean"]
                          for t in entry["trials"]])  # a failed trial: no point
        line, = ax.plot(range(len(means)), means, "o", ms=4, label=method, color=f"C{i % 10}")
        ax.plot(range(len(means)), np.fmax.accumulate(means), "--", color=line.get_color(), lw=1)
    ax.set_xlabel("trial (0: defaults)")
    ax.set_ylabel("validation Last (mean over seeds)")
    ax.set_title(f"tuning on {tuned['scenario']}; dashed: best so far")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def write_tuning(out: str, tuned: dict) -> None:
    atomic_write_set({os.path.join(out, TUNED_FILE): json.dumps(tuned, indent=1) + "\n",
                      os.path.join(out, TABLE_FILE): tuning_table(tuned)})
    atomic_write_bytes(os.path.join(out, FIGURE_FILE), png_bytes(tuning_figure(tuned)))


def load_tuned(path: str) -> dict:
    """--settings FILE: {method: {"settings", "scenario", "trials", "seeds", "sha256"}} from a tuned.json;
    ConfigError naming what is wrong with the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        tuned = json.loads(raw)
        if tuned.get("format") != TUNED_FORMAT or not isinstance(tuned.get("methods"), dict):
            raise ValueError("not a tuned.json of this ctrl-bench")
        chosen = {method: {"settings": dict(entry["settings"]), "scenario": str(tuned["scenario"]),
                           "trials": int(tuned["trials"]), "seeds": list(tuned["seeds"])}
                  for method, entry in tuned["methods"].items()}
    except OSError as err:
        raise ConfigError(f"--settings {path}: {err.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"--settings {path}: {err}; give the tuned.json that ctrl-bench tune wrote") from None
    # each method's source is the hash of what was chosen for it and where, not of the whole file: a method
    # added to the file, or a finished tune run again, leaves the other methods' tuned records valid
    return {method: {**entry, "sha256": short_hash(entry)} for method, entry in chosen.items()}
