#!/usr/bin/env python3
"""ctrl-bench: run continual-learning methods × class-incremental scenarios × seeds.

Writes, under --out: results.json, results.csv, results.md (the i-CTRL paper's table layout: Last
and Avg accuracy, mean ± std over seeds, memory kept in floats, then per-run provenance) built from
every record under --out, figures/ (per scenario: accuracy on the classes seen so far after every
experience, and Last accuracy against memory), one record per (scenario, method, seed) in
records/, one TensorBoard run per (scenario, method, seed) with i-CTRL's replay grids, and
per-experience checkpoints. Rerunning a command
reuses each record whose settings, data, code and device still match (else says why and runs it
again) and resumes an interrupted run after its last finished experience. Same seed and same
--threads give bit-identical numbers on a CPU.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings

EXAMPLE = """examples:
  python run_bench.py                                   # default comparison: split_mnist, quick preset
  python run_bench.py --scenario npz:../shared/data/mnist-5k.npz --methods ctrl lwf icarl --seeds 0 1 2
  python run_bench.py --scenario split_cifar10 --n-experiences 10 --preset paper --device cuda
  python run_bench.py --methods ncm fecam fetril pass --option ncm.oracle=true   # an oracle, marked as such
  python run_bench.py --seeds 0 1 2 --workers 2 --cpus-per-cell 1   # 2 cells at once on Ray (pip install -e ".[ray]")
  tensorboard --logdir runs/tensorboard                 # replay grids under IMAGES: replay/class_<c>
"""

DEFAULT_METHODS = ["ctrl", "naive", "lwf", "icarl", "replay"]


MAX_SEED = 2**32 - 1  # numpy's and Avalanche's seeds are 32-bit


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        fail(f"{message} (see --help)")


def bounded(kind, low: float, inclusive: bool = True, high: float | None = None):
    """An argparse type: ``kind`` values ≥ low (or > low), ≤ high; says which bound failed."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if value < low or (value == low and not inclusive) or (high is not None and value > high):
            bound = f"{'≥' if inclusive else '>'} {low}" + (f" and ≤ {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return parse


positive_int, positive_float, non_negative = bounded(int, 1), bounded(float, 0, inclusive=False), bounded(float, 0)


def parse_args(argv=None):
    import torch

    from baselines import method_names
    from ctrl_bench.harness import grid
    from ctrl_bench.harness.presets import preset_names
    from ctrl_bench.harness.records import REUSE_POLICIES
    from scenarios import scenario_names

    p = OneLineErrorParser(description=__doc__, epilog=method_options_help() + EXAMPLE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", nargs="+", default=["split_mnist"], metavar="NAME",
                   help=f"one or more of: {', '.join(scenario_names())} (default: split_mnist)")
    p.add_argument("--n-experiences", type=positive_int, default=None, metavar="N",
                   help="experiences per scenario; must divide the number of classes (default: 5; CIFAR-100: 10)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, metavar="METHOD",
                   help=f"any of: {', '.join(method_names())} (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", type=bounded(int, 0, high=MAX_SEED), default=[0], metavar="SEED",
                   help=f"seeds in 0..{MAX_SEED}; each also fixes the class order (default: 0)")
    p.add_argument("--class-order", nargs="+", type=int, default=None, metavar="CLASS",
                   help="fixed class order (a permutation of 0..K-1) instead of the seed's")
    p.add_argument("--preset", default="quick",
                   help=f"one of: {', '.join(preset_names())} (default: quick): quick = minutes per method on a CPU, "
                        "paper = the published training lengths, for a GPU (with --backbone conv: the reference's "
                        "DCGAN pair and game)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: auto)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch CPU threads; part of a run's settings, since the count changes CPU numbers "
                        f"(default: torch's current count, here {torch.get_num_threads()}; on Ray: int(--cpus-per-cell))")
    p.add_argument("--option", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="a method's own setting (repeatable; listed below), e.g. pass.rotation=false")
    p.add_argument("--out", default="runs", help="output folder (default: runs/)")
    p.add_argument("--reuse", choices=REUSE_POLICIES, default="valid",
                   help="finished runs under --out: valid = reuse a record (and resume a checkpoint) only while "
                        "its settings, data, code and device match, else run again and say why; never = run "
                        "everything again from the start; always = reuse any record of the same scenario, method "
                        "and seed (default: valid)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's last checkpoint once its record is written (default: delete it)")
    p.add_argument("--data-root", default="./data", help="where torchvision data sets live (default: ./data)")
    p.add_argument("--no-download", action="store_true", help="never download; fail with the list of missing files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("overrides of the preset (all methods)")
    g.add_argument("--backbone", choices=["conv", "crate", "mlp"], help="network family (ctrl: conv or crate)")
    g.add_argument("--size", choices=["tiny", "small", "base"], help="network size preset")
    g.add_argument("--feature-dim", type=positive_int, help="feature dimension d of encoder and classifiers")
    g.add_argument("--epochs", type=positive_int, help="epochs per experience of the baselines")
    g.add_argument("--batch-size", type=positive_int, help="training batch size of the baselines")
    g.add_argument("--lr", type=positive_float, help="Adam learning rate of the baselines")
    g.add_argument("--mem-size", type=positive_int, help="images a rehearsal baseline may keep")
    c = p.add_argument_group("overrides of the preset (ctrl / i-CTRL)")
    c.add_argument("--ctrl-epochs", type=positive_int, help="epochs of the game per experience")
    c.add_argument("--ctrl-batch-size", type=positive_int, help="images per step of the game")
    c.add_argument("--ctrl-lr", type=positive_float, help="Adam learning rate of both players")
    c.add_argument("--ctrl-eps2", type=positive_float, help="ε² of the rate terms")
    c.add_argument("--ctrl-new-weight", type=non_negative, help="λ on ΔR(Z_new, Ẑ_new)")
    c.add_argument("--ctrl-gamma", type=non_negative, help="γ on the constraint ΔR(Z_old, Ẑ_old) (start of μ)")
    c.add_argument("--ctrl-constraint", choices=["penalty", "augmented_lagrangian"])
    c.add_argument("--ctrl-classifier", choices=["memory", "paper"],
                   help="memory: built from the stored statistics only (default); paper: refit on real training "
                        "images of every seen class, the reference code's protocol (labelled in the results)")
    c.add_argument("--ctrl-review", action="store_true", default=None, help="refresh old classes' statistics via f∘g")
    c.add_argument("--ctrl-updates", choices=["alternating", "simultaneous"],
                   help="alternating: the encoder steps, then the decoder against the updated encoder (reference "
                        "code; paper preset); simultaneous: both from one forward (quick preset)")
    c.add_argument("--ctrl-init", choices=["default", "dcgan"],
                   help="initialisation of ctrl's conv pair: PyTorch's (quick) or DCGAN N(0, 0.02) (reference; paper); "
                        "CRATE always uses PyTorch's")
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
    args = p.parse_args(argv)
    try:
        grid.resolve_threads(args, default=torch.get_num_threads())
    except ValueError as err:
        p.error(str(err))
    return args


def method_options_help() -> str:
    from baselines import method_names, method_options
    lines = [f"  {m}.{name}: {text}" for m in method_names() for name, text in sorted(method_options(m).items())]
    return "method options (--option METHOD.NAME=VALUE):\n" + "\n".join(lines) + "\n\n"


def parse_method_options(texts: list[str], methods: list[str]) -> dict[str, dict]:
    """--option values by method; ValueError for a malformed one, an unknown name or a method not run."""
    from baselines import parse_option
    options: dict[str, dict] = {}
    for text in texts:
        method, name, value = parse_option(text)
        if method not in methods:
            raise ValueError(f"--option {text!r}: {method} is not among --methods")
        options.setdefault(method, {})[name] = value
    return options


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def scenario_label(name: str, n_experiences: int | None) -> str:
    """e.g. "split_mnist-5", or "mnist-5k-5" for npz:…/mnist-5k.npz."""
    from scenarios.registry import default_experiences
    base = os.path.splitext(os.path.basename(name[4:]))[0] if name.startswith("npz:") else name
    return f"{base}-{n_experiences or default_experiences(name)}"


def main(argv=None) -> int:
    # Avalanche's deprecation decorator turns warnings back on for every call; keep the console readable.
    warnings.filterwarnings("ignore")
    warnings.showwarning = lambda *args, **kwargs: None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _main(args, command=shlex.join(["python", "run_bench.py", *argv]))
    except KeyboardInterrupt as err:  # a BenchInterrupted says what finished; anything earlier wrote nothing
        print(f"\n{err}" if str(err) else "\ninterrupted before any run started; nothing was written",
              file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)


def _main(args, command: str) -> int:
    from baselines import get_method
    from baselines._backbones import BACKBONES
    from ctrl_bench.device import resolve_device
    from ctrl_bench.harness import grid
    from ctrl_bench.harness.presets import resolve_preset
    from scenarios import registry

    # Validate every name before any data is read.
    try:
        for name in args.scenario:
            registry.check_scenario(name, args.n_experiences)
        for method in args.methods:
            get_method(method)
        options = parse_method_options(args.option, args.methods)
        device = resolve_device(args.device)
        overrides = {"backbone": args.backbone, "size": args.size, "feature_dim": args.feature_dim,
                     "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "mem_size": args.mem_size,
                     "ctrl": {"epochs": args.ctrl_epochs, "batch_size": args.ctrl_batch_size, "lr": args.ctrl_lr,
                              "eps2": args.ctrl_eps2, "new_weight": args.ctrl_new_weight, "gamma": args.ctrl_gamma,
                              "constraint": args.ctrl_constraint, "classifier": args.ctrl_classifier,
                              "review": args.ctrl_review, "init": args.ctrl_init,
                              "alternate": None if args.ctrl_updates is None else args.ctrl_updates == "alternating"}}
        configs = {name: resolve_preset(args.preset, name, overrides) for name in args.scenario}
        for config in configs.values():
            if config["backbone"] not in BACKBONES:
                raise ValueError(f"unknown backbone {config['backbone']!r}")
            if "ctrl" in args.methods and config["backbone"] == "mlp":
                raise ValueError("ctrl needs an autoencoder backbone: use --backbone conv or crate")
        if len(set(args.methods)) != len(args.methods) or len(set(args.seeds)) != len(args.seeds):
            raise ValueError("--methods and --seeds must not repeat a value")
        if len(set(args.scenario)) != len(args.scenario):
            raise ValueError("--scenario must not repeat a value")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out} is a file; give a folder (it is created if missing)")
        if grid.requested(args):
            grid.check(args, device)
    except ValueError as err:
        fail(str(err))

    # Read and check every data set (labels, class order, experiences) before anything is written.
    from ctrl_bench.rate import NonFiniteRateError
    from scenarios.npz import MalformedNpzError
    from scenarios.registry import DataMissingError, load_data
    try:
        datasets = {name: load_data(name, args.n_experiences, args.class_order, args.data_root,
                                    download=not args.no_download) for name in args.scenario}
    except (DataMissingError, MalformedNpzError, FileNotFoundError, ValueError) as err:
        fail(str(err), code=1)

    from ctrl_bench.harness.bench import run_all
    failed = []
    try:
        if grid.requested(args):  # the same cells on Ray; a failed cell is reported and the others go on
            summary, failed = grid.run_grid(args, configs, device, datasets, command, options)
        else:
            summary = run_all(args, configs, device, datasets, command, options)
    except (NonFiniteRateError, grid.GridUnavailable) as err:  # a NaN in a loss, or no Ray: say it plainly
        fail(str(err), code=1)
    print(summary)
    print(f"results written to {os.path.abspath(args.out)}/results.{{json,csv,md}}; "
          f"TensorBoard: tensorboard --logdir {os.path.join(args.out, 'tensorboard')}")
    if failed:
        print(f"error: {len(failed)} of {len(args.scenario) * len(args.methods) * len(args.seeds)} runs failed "
              "(listed above and in results.md); rerun the same command to run them again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
