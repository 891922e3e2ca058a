#!/usr/bin/env python3
"""ctrl-bench: run continual-learning methods × class-incremental scenarios × seeds.

Writes, under --out: results.json, results.csv, results.md (the i-CTRL paper's table layout: Last
and Avg accuracy, mean ± std over seeds), one TensorBoard run per (scenario, method, seed) with
i-CTRL's replay grids, and per-experience checkpoints: rerunning the same command reuses every
finished (method, seed) and resumes an interrupted one after its last finished experience.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

EXAMPLE = """examples:
  python run_bench.py                                   # default comparison: split_mnist, quick preset
  python run_bench.py --scenario npz:../shared/data/mnist-5k.npz --methods ctrl lwf icarl --seeds 0 1 2
  python run_bench.py --scenario split_cifar10 --n-experiences 10 --preset paper --device cuda
  tensorboard --logdir runs/tensorboard                 # replay grids under IMAGES: replay/class_<c>
"""

DEFAULT_METHODS = ["ctrl", "naive", "lwf", "icarl", "replay"]


def parse_args(argv=None):
    from baselines import method_names
    from ctrl_bench.harness.presets import preset_names
    from scenarios import scenario_names

    p = argparse.ArgumentParser(description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", nargs="+", default=["split_mnist"], metavar="NAME",
                   help=f"one or more of: {', '.join(scenario_names())} (default: split_mnist)")
    p.add_argument("--n-experiences", type=int, default=None, help="experiences per scenario (default: 5; CIFAR-100: 10)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, metavar="METHOD",
                   help=f"any of: {', '.join(method_names())} (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds; each also fixes the class order (default: 0)")
    p.add_argument("--class-order", nargs="+", type=int, default=None, help="fixed class order instead of the seed's")
    p.add_argument("--preset", default="quick", help=f"one of: {', '.join(preset_names())} (default: quick)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: auto)")
    p.add_argument("--out", default="runs", help="output folder (default: runs/)")
    p.add_argument("--data-root", default="./data", help="where torchvision data sets live (default: ./data)")
    p.add_argument("--no-download", action="store_true", help="never download; fail with the list of missing files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("overrides of the preset (all methods)")
    g.add_argument("--backbone", choices=["conv", "crate", "mlp"], help="network family (ctrl: conv or crate)")
    g.add_argument("--size", choices=["tiny", "small", "base"], help="network size preset")
    g.add_argument("--feature-dim", type=int)
    g.add_argument("--epochs", type=int, help="epochs per experience of the baselines")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--mem-size", type=int, help="images a rehearsal baseline may keep")
    c = p.add_argument_group("overrides of the preset (ctrl / i-CTRL)")
    c.add_argument("--ctrl-epochs", type=int)
    c.add_argument("--ctrl-batch-size", type=int)
    c.add_argument("--ctrl-lr", type=float)
    c.add_argument("--ctrl-eps2", type=float, help="ε² of the rate terms")
    c.add_argument("--ctrl-new-weight", type=float, help="λ on ΔR(Z_new, Ẑ_new)")
    c.add_argument("--ctrl-gamma", type=float, help="γ on the constraint ΔR(Z_old, Ẑ_old) (start of μ)")
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
    return p.parse_args(argv)


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
    args = parse_args(argv)
    from baselines import get_method
    from baselines._backbones import BACKBONES
    from ctrl_bench.device import resolve_device
    from ctrl_bench.harness.presets import resolve_preset
    from scenarios import registry

    # Validate every name before any training starts.
    try:
        for name in args.scenario:
            registry.check_scenario(name, args.n_experiences)
        for method in args.methods:
            get_method(method)
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
            raise ValueError("methods and seeds must not repeat")
    except ValueError as err:
        fail(str(err))

    from ctrl_bench.harness.bench import run_all
    try:
        table = run_all(args, configs, device)
    except Exception as err:  # data missing, malformed .npz, NaN in a loss: say it plainly
        from ctrl_bench.rate import NonFiniteRateError
        from scenarios.npz import MalformedNpzError
        from scenarios.registry import DataMissingError
        if isinstance(err, (DataMissingError, MalformedNpzError, NonFiniteRateError, FileNotFoundError, ValueError)):
            fail(str(err), code=1)
        raise
    print(table)
    print(f"results written to {os.path.abspath(args.out)}/results.{{json,csv,md}}; "
          f"TensorBoard: tensorboard --logdir {os.path.join(args.out, 'tensorboard')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
