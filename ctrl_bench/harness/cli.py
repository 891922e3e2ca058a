"""ctrl-bench: run continual-learning methods × class-incremental scenarios × seeds.

Writes, under --out: results.json, results.csv, results.md (the i-CTRL paper's table layout: Last
and Avg accuracy, mean ± std over seeds, memory kept in floats, then per-run provenance) built from
every record under --out, figures/ (per scenario: accuracy on the classes seen so far after every
experience, and Last accuracy against memory), one record per (scenario, method, seed) in
records/, one TensorBoard run per (scenario, method, seed) with i-CTRL's replay grids, and
per-experience checkpoints. Rerunning a command reuses each record whose settings, data, code and
device still match (else says why and runs it again) and resumes an interrupted run after its last
finished experience. On one machine, the same seed and --threads give bit-identical numbers on a CPU.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import shlex
import sys

import torch

from baselines import COMMON_OPTIONS, MethodError, declared, method_names, method_options, parse_option
from ctrl_bench.limits import FLOAT32_MAX, INT64_MAX
from ctrl_bench.rate import NonFiniteRateError
from scenarios import scenario_names

from . import grid, stopping
from .atomic import WriteError
from .bench import DataError, ProbeFailed, check_names, run
from .budget import PROBE_EPOCHS
from .cells import silence_warnings
from .config import LOGGERS, REUSE_POLICIES, WANDB_INSTALL, ConfigError, GridConfig, RunConfig
from .lock import OutInUse
from .presets import preset_names
from . import tune

DEFAULTS = RunConfig()
EXAMPLE = f"""examples:
  ctrl-bench                                            # the quick comparison on the MNIST subset that ships
  ctrl-bench --scenario split_cifar10 --methods {' '.join(DEFAULTS.methods)} --seeds 0 1 2   # downloads CIFAR-10
  ctrl-bench --scenario split_cifar10 --n-experiences 10 --preset paper --device cuda
  ctrl-bench --methods ncm fecam fetril pass --option ncm.oracle=true   # an oracle, marked as such
  ctrl-bench --seeds 0 1 2 --workers 2 --cpus-per-cell 1   # 2 cells at once on Ray (pip install -e ".[ray]")
  tensorboard --logdir runs/tensorboard                 # replay grids under IMAGES: replay/class_<c>
  ctrl-bench tune --validation 0.1 --trials 16 --out runs/tune   # the same search for every method (tune --help)
(python run_bench.py … is the same command.)
"""

MAX_SEED = 2**32 - 1  # numpy's and Avalanche's seeds are 32-bit
# A write that fails for one of these reasons ends the command with one line naming the file.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        fail(f"{message} (see --help)")


def bounded(kind, low: float, inclusive: bool = True, high: float | None = None):
    """An argparse type: ``kind`` values ≥ low (or > low), ≤ high (default: what an int64 or a float32
    holds, the tensors the value feeds); says which bound failed."""
    shown_high = high
    high = high if high is not None else (INT64_MAX if kind is int else FLOAT32_MAX)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (value == low and not inclusive) or value > high:
            top = shown_high if shown_high is not None or value <= high else high
            bound = f"{'≥' if inclusive else '>'} {low}" + ("" if top is None else f" and ≤ {top:.4g}" if
                                                            isinstance(top, float) else f" and ≤ {top}")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return parse


positive_int, positive_float, non_negative = bounded(int, 1), bounded(float, 0, inclusive=False), bounded(float, 0)


def build_parser(prog: str = "ctrl-bench") -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog=prog, description=__doc__, epilog=method_options_help() + EXAMPLE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", nargs="+", default=list(DEFAULTS.scenarios), metavar="NAME",
                   help=f"one or more of: {', '.join(scenario_names())} (default: {' '.join(DEFAULTS.scenarios)}, "
                        "which ships with ctrl-bench)")
    p.add_argument("--n-experiences", type=positive_int, default=DEFAULTS.n_experiences, metavar="N",
                   help="experiences per scenario; must divide the number of classes (default: 5; CIFAR-100: 10)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULTS.methods), metavar="METHOD",
                   help=f"any of: {', '.join(method_names())} (default: {' '.join(DEFAULTS.methods)})")
    p.add_argument("--seeds", nargs="+", type=bounded(int, 0, high=MAX_SEED), default=list(DEFAULTS.seeds),
                   metavar="SEED", help=f"seeds in 0..{MAX_SEED}; each also fixes the class order (default: "
                                        f"{' '.join(map(str, DEFAULTS.seeds))})")
    p.add_argument("--class-order", nargs="+", type=int, default=None, metavar="CLASS",
                   help="fixed class order (a permutation of 0..K-1) instead of the seed's")
    p.add_argument("--first-experience-classes", type=positive_int, metavar="N",
                   help="a warm start: the first experience holds N classes, the others split the rest evenly "
                        "(PyCIL's init_cls; e.g. 50 of CIFAR-100's 100 with --n-experiences 6)")
    p.add_argument("--validation", type=bounded(float, 0, inclusive=False, high=0.5), metavar="F",
                   help="hold out a fraction F of every class's training images (seeded, the same for every run) "
                        "and evaluate on them; the test images are never read (choose settings this way)")
    p.add_argument("--preset", default=DEFAULTS.preset,
                   help=f"one of: {', '.join(preset_names())} (default: {DEFAULTS.preset}): quick = minutes per method "
                        "on a CPU, paper = the published training lengths, for a GPU (with --backbone conv: the "
                        "reference's DCGAN pair and game)")
    p.add_argument("--device", default=DEFAULTS.device,
                   help=f"auto (CUDA when present), cpu or cuda (default: {DEFAULTS.device})")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads; part of a run's settings, since the count changes CPU numbers "
                        f"(default: torch's current count, here {torch.get_num_threads()}; on Ray: int(--cpus-per-cell))")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="a method's own setting (repeatable; listed below), e.g. pass.rotation=false")
    p.add_argument("--out", default=DEFAULTS.out, help=f"output folder (default: {DEFAULTS.out}/)")
    p.add_argument("--reuse", choices=REUSE_POLICIES, default=DEFAULTS.reuse,
                   help="finished runs under --out: valid = reuse a record (and resume a checkpoint) only while "
                        "its settings, data, code and device match, else run again and say why; never = run "
                        "everything again from the start; always = reuse any record of the same scenario, method "
                        f"and seed (default: {DEFAULTS.reuse})")
    p.add_argument("--wait", action="store_true",
                   help="when another command is using --out, wait for it to finish (default: say which command "
                        "holds it and exit 1)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's last checkpoint once its record is written (default: delete it)")
    p.add_argument("--data-root", default=DEFAULTS.data_root,
                   help=f"where torchvision data sets live (default: {DEFAULTS.data_root})")
    p.add_argument("--no-download", action="store_true", help="never download; fail with the list of missing files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--reference", metavar="METHOD",
                   help="with 2 or more seeds, results.md pairs each row's Last with this method's best row on the "
                        "seeds both ran (mean difference, 95 %% CI, paired t-test and Wilcoxon p) (default: the best "
                        "row of each scenario)")
    e = p.add_argument_group("continual evaluation and logging")
    e.add_argument("--eval-every", type=positive_int, metavar="STEPS",
                   help="also evaluate every method on the classes of earlier experiences every STEPS training steps "
                        "(a seeded subset of their evaluation images; not counted in training FLOPs): records gain "
                        "min_accuracy (De Lange et al.'s min-ACC), stability_gap and the trace, figures/<scenario>-"
                        "continual.png draws it; part of a run's settings (default: never)")
    e.add_argument("--eval-images", type=positive_int, metavar="N",
                   help="with --eval-every: images of each earlier experience evaluated (default: 1000, or all it has)")
    e.add_argument("--log", nargs="+", choices=LOGGERS, default=list(DEFAULTS.log), metavar="LOGGER",
                   help=f"where each run logs its metrics and i-CTRL's replay grids: {' and/or '.join(LOGGERS)} (W&B: "
                        f"one run per cell, grouped by command; WANDB_MODE=offline writes it under --out/wandb without "
                        f"a network; needs {WANDB_INSTALL}) (default: {' '.join(DEFAULTS.log)})")
    restricted = "; ".join(f"{m}: {' or '.join(declared(m, 'BACKBONES'))}" for m in method_names()
                           if tuple(declared(m, "BACKBONES")) != ("conv", "crate", "mlp"))
    g = p.add_argument_group("overrides of the preset (every method that does not set its own)")
    g.add_argument("--backbone", choices=["conv", "crate", "mlp"],
                   help="network family" + (f" ({restricted})" if restricted else ""))
    g.add_argument("--size", choices=["tiny", "small", "base"], help="network size preset")
    g.add_argument("--feature-dim", type=positive_int, help="feature dimension d of encoder and classifiers")
    g.add_argument("--epochs", type=positive_int, nargs="+", metavar="N",
                   help="epochs per experience, for every method (the budget); several values give every method one "
                        "run per value, every experience that long (a curve in the FLOPs figure)")
    g.add_argument("--budget-flops", type=positive_float, nargs="+", metavar="F",
                   help="compute-matched instead of epoch-matched: every method the most epochs per experience whose "
                        f"training FLOPs fit in F: a first guess from runs of it at {' and '.join(map(str, PROBE_EPOCHS))} "
                        "epochs, then runs at the guessed epochs until the most that fit is measured (all kept under "
                        "--out/flops-probes); several values give one run per value (a curve in the FLOPs figure)")
    g.add_argument("--settings", metavar="TUNED_JSON",
                   help="run each method with the settings `ctrl-bench tune` chose for it (its tuned.json); rows are "
                        "labelled 'tuned on S (N trials)', methods the file lacks run at their defaults")
    g.add_argument("--first-epochs", type=positive_int,
                   help="epochs of the first experience, for every method (default: the preset's, else --epochs)")
    g.add_argument("--batch-size", type=positive_int, help="training batch size")
    g.add_argument("--lr", type=positive_float, help="Adam learning rate of the classifier methods")
    g.add_argument("--mem-size", type=positive_int, nargs="+", metavar="N",
                   help="images a rehearsal method may keep; several values give each rehearsal method one run per "
                        "value (a curve in the memory figure)")
    g.add_argument("--memory-floats", type=positive_int, nargs="+", metavar="N",
                   help="give each rehearsal method the images that fit in N floats (⌊N / (C·H·W)⌋), one run per value, "
                        "e.g. the floats i-CTRL keeps")
    for method in method_names():
        flags = declared(method, "CLI_FLAGS")
        if flags:
            group = p.add_argument_group(f"{method}: each --{method}-NAME VALUE is --option {method}.NAME=VALUE")
            for name, spec in flags.items():
                flag, dest = f"--{method}-{name.replace('_', '-')}", alias_dest(method, name)
                if "switch" in spec:
                    group.add_argument(flag, dest=dest, action="store_const", const=spec["switch"], help=spec["help"])
                else:
                    choices = list(spec["choices"]) if "choices" in spec else None
                    group.add_argument(flag, dest=dest, choices=choices, metavar=None if choices else "VALUE",
                                       help=spec["help"])
    spread = [m for m in method_names() if declared(m, "DISTRIBUTED")]
    p.add_argument("--distributed", action="store_true",
                   help="run each cell over the processes torchrun starts (torchrun --nproc_per_node N -m ctrl_bench "
                        "… --distributed): every batch split over them, the rate terms on the whole batch; NCCL on "
                        f"GPUs, gloo on CPU; methods that declare it: {', '.join(spread) or 'none'}")
    r = p.add_argument_group(f"the grid on Ray: cells (scenario, method, seed) in parallel ({grid.INSTALL})")
    r.add_argument("--workers", type=positive_int, metavar="N",
                   help="run up to N cells at once on this machine, through a local Ray instance the run starts and "
                        "stops (with --ray-address: at most N at once on the cluster)")
    r.add_argument("--ray-address", metavar="ADDR",
                   help="run the cells on an existing Ray cluster: its address, or auto (the one `ray start --head` "
                        "started here)")
    r.add_argument("--cpus-per-cell", type=positive_float, metavar="C",
                   help="CPUs Ray gives a cell; it runs int(C) torch threads, at least 1 (default: --threads, or 1)")
    r.add_argument("--gpus-per-cell", type=non_negative, metavar="G",
                   help="GPUs a cell gets; fractions share one, e.g. 0.25 (default: 1 on CUDA, else 0)")
    return p


def alias_dest(method: str, name: str) -> str:
    return f"alias__{method}__{name}"


def method_options_help() -> str:
    lines = [f"  {m}.{name}: {text}" for m in method_names() for name, text in sorted(method_options(m).items())]
    common = [f"  METHOD.{name}: {text} (any method; a method's preset may set it too)"
              for name, text in COMMON_OPTIONS.items()]
    return "method options (--option METHOD.NAME=VALUE):\n" + "\n".join(common + lines) + "\n\n"


def parse_method_options(texts: list[str], methods: list[str]) -> dict[str, dict]:
    """--option values by method; MethodError for a malformed one, an unknown name or a method not run."""
    options: dict[str, dict] = {}
    for text in texts:
        method, name, value = parse_option(text)
        if method not in methods:
            raise MethodError(f"--option {text!r}: {method} is not among --methods")
        options.setdefault(method, {})[name] = value
    return options


def alias_options(args) -> list[str]:
    """The --METHOD-NAME flags that methods declare (``CLI_FLAGS``) as --option METHOD.NAME=VALUE texts."""
    texts = []
    for method in method_names():
        for name, spec in declared(method, "CLI_FLAGS").items():
            value = getattr(args, alias_dest(method, name))
            if value is None:
                continue
            if "choices" in spec:
                value = spec["choices"][value]
            text = str(value).lower() if isinstance(value, bool) else str(value)
            texts.append(f"{method}.{spec.get('option', name)}={text}")
    return texts


def to_run_config(args, command: str) -> RunConfig:
    """The typed configuration of the parsed command line; MethodError for an option that cannot be
    read, ConfigError for flags that need others."""
    if args.workers is None and args.ray_address is None:
        grid_config = None
        for flag in ("cpus_per_cell", "gpus_per_cell"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag.replace('_', '-')} needs --workers or --ray-address")
    else:
        grid_config = GridConfig(args.workers, args.ray_address, args.cpus_per_cell, args.gpus_per_cell)
    method_options = parse_method_options(args.option + alias_options(args), args.methods)
    tuned = {m: entry for m, entry in tune.load_tuned(args.settings).items() if m in args.methods} if args.settings else {}
    for method, entry in tuned.items():
        clash = sorted(set(entry["settings"]) & set(method_options.get(method, {})))
        if clash:
            raise ConfigError(f"--option {method}.{clash[0]} and --settings both set it: give one")
        if entry["settings"]:
            method_options[method] = {**entry["settings"], **method_options.get(method, {})}
    epochs = args.epochs or []
    overrides = {"backbone": args.backbone, "size": args.size, "feature_dim": args.feature_dim,
                 "epochs": epochs[0] if len(epochs) == 1 else None,
                 "first_epochs": args.first_epochs, "batch_size": args.batch_size, "lr": args.lr}
    return RunConfig(
        scenarios=tuple(args.scenario), methods=tuple(args.methods), seeds=tuple(args.seeds), preset=args.preset,
        n_experiences=args.n_experiences, class_order=None if args.class_order is None else tuple(args.class_order),
        validation=args.validation, first_experience_classes=args.first_experience_classes,
        mem_sizes=tuple(args.mem_size or ()), memory_floats=tuple(args.memory_floats or ()),
        epochs_values=tuple(epochs) if len(epochs) > 1 else (), budget_flops=tuple(args.budget_flops or ()),
        device=args.device, threads=args.threads, overrides={k: v for k, v in overrides.items() if v is not None},
        method_options=method_options, out=args.out, reuse=args.reuse, keep_checkpoints=args.keep_checkpoints,
        data_root=args.data_root, download=not args.no_download, progress=not args.no_progress, grid=grid_config,
        wait=args.wait, distributed=args.distributed, command=command, reference=args.reference, tuned=tuned,
        eval_every=args.eval_every, eval_images=args.eval_images, log=tuple(args.log),
    )


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def build_tune_parser(prog: str) -> argparse.ArgumentParser:
    """``ctrl-bench tune``: the command's own flags (scenario, budget, seeds, --workers, …) and the search's."""
    p = build_parser(prog)
    p.description = tune.__doc__
    methods = " ".join(DEFAULTS.methods)
    p.epilog = (f"example:\n  {prog} --validation 0.1 --methods {methods} --trials 16 --seeds 0 1 2 --workers 2 "
                "--cpus-per-cell 1 --out runs/tune\n"
                f"  ctrl-bench --settings runs/tune/{tune.TUNED_FILE} --methods {methods} --seeds 0 1 2")
    s = p.add_argument_group("the search")
    s.add_argument("--trials", type=positive_int, default=16, metavar="N",
                   help="trials per method, the same N for every method; trial 0 is its defaults (default: 16)")
    s.add_argument("--search-seed", type=bounded(int, 0, high=MAX_SEED), default=0, metavar="SEED",
                   help="seed of the random search (default: 0)")
    return p


def tune_main(argv: list[str], prog: str) -> int:
    """``ctrl-bench tune …``: tune every method (:mod:`.tune`), print each one's choice."""
    args = build_tune_parser(prog).parse_args(argv)
    try:
        config = to_run_config(args, command=" ".join([prog, shlex.join(argv)]))
        check_names(config)
        tuned = tune.tune_methods(config, args.trials, args.search_seed)
    except (ConfigError, MethodError) as err:
        fail(str(err))
    except (DataError, grid.GridUnavailable, OutInUse, RuntimeError) as err:
        fail(str(err), code=1)
    except KeyboardInterrupt as err:  # a TuneInterrupted says what finished; anything earlier wrote no trial
        said = str(err) or "interrupted before any trial ran; rerun the same command to start"
        print(f"\n{stopping.closing_line(said)}", file=sys.stderr)
        return stopping.exit_code()
    for method, entry in tuned["methods"].items():
        stat = entry["validation_last"]
        print(f"{method}: trial {entry['chosen_trial']} of {tuned['trials']}, validation Last {stat['mean']:.3f} ± "
              f"{stat['std']:.3f}, settings {entry['settings'] or 'the defaults'}")
    where = os.path.abspath(args.out)
    print(f"written: {where}/{{{tune.TUNED_FILE},{tune.TABLE_FILE},{tune.FIGURE_FILE}}}; run with them: ctrl-bench --settings "
          f"{os.path.join(where, tune.TUNED_FILE)} …")
    return 0


def command(prog: str = "ctrl-bench") -> None:
    """The ``ctrl-bench`` process: :func:`main` on ``sys.argv``, its result the exit status (:func:`.stopping.leave`)."""
    stopping.leave(main(prog=prog))


def main(argv=None, prog: str = "ctrl-bench") -> int:
    """The command line: parse, run, print the summary; one line on stderr and exit 2 for bad
    arguments, 1 for bad data, a failed run or a file that cannot be written, 130 on Ctrl-C and 143 on SIGTERM
    (:mod:`.stopping`).
    ``ctrl-bench tune …`` is the tuner (:func:`tune_main`), ``ctrl-bench report …`` renders the
    results store (:mod:`.report`)."""
    silence_warnings()
    stopping.install()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tune"]:
        return tune_main(argv[1:], f"{prog} tune")
    if argv[:1] == ["report"]:  # the README's results and docs/results.md from results/ (:mod:`.report`)
        from . import report
        return report.main(argv[1:], f"{prog} report")
    args = build_parser(prog).parse_args(argv)
    if args.distributed and int(os.environ.get("RANK", "0")) > 0:
        sys.stdout = open(os.devnull, "w")  # one process speaks: rank 0
    try:
        outcome = run(to_run_config(args, command=" ".join([prog, shlex.join(argv)])))
    except (ConfigError, MethodError) as err:
        fail(str(err))
    except (DataError, NonFiniteRateError, grid.GridUnavailable, OutInUse, ProbeFailed) as err:  # bad data, a NaN, no Ray, a busy --out
        fail(str(err), code=1)
    except WriteError as err:
        fail(f"{err.strerror}; the records finished before it are kept: free the space or fix the folder's "
             "permissions, and rerun the same command to go on", code=1)
    except OSError as err:
        if err.errno not in WRITE_ERRNOS or err.filename is None:
            raise
        fail(f"cannot write {err.filename}: {err.strerror}; the records finished before it are kept: free the "
             "space or fix the folder's permissions, and rerun the same command to go on", code=1)
    except KeyboardInterrupt as err:  # a BenchInterrupted says what finished; anything earlier wrote nothing
        said = str(err) or "interrupted before any run started; nothing was written"
        print(f"\n{stopping.closing_line(said)}", file=sys.stderr)
        return stopping.exit_code()
    print(outcome.summary)
    print(f"results written to {os.path.abspath(args.out)}/results.{{json,csv,md}}; "
          f"TensorBoard: tensorboard --logdir {os.path.join(args.out, 'tensorboard')}"
          + (f"; W&B runs under {os.path.join(args.out, 'wandb')} (offline ones: wandb sync DIR)" if "wandb" in args.log
             else ""))
    if outcome.failed:
        print(f"error: {len(outcome.failed)} of {outcome.total} runs failed (listed above and in results.md); "
              "rerun the same command to run them again", file=sys.stderr)
        return 1
    return 0
