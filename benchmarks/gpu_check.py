#!/usr/bin/env python3
"""A GPU check in one short call: every method for one epoch per experience on both subsets on the
device, then the paper preset's first experience for the CRATE pair and the conv reference variant;
prints seconds and peak GPU memory per run, and any run whose tensors leave the device (or that
fails) as a FAILURE line; exits 1 if there is one.

    python benchmarks/gpu_check.py                          # on CUDA (under 8 minutes on one GPU)
    python benchmarks/gpu_check.py --device cpu --methods naive ctrl --scenarios mnist_5k --quick   # a dry run
    python benchmarks/gpu_check.py --print-commands         # what it runs, as ctrl-bench commands
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

DEFAULT_SCENARIOS = ["mnist_5k", "npz:../shared/data/cifar10-subset.npz"]


def commands(args) -> list[tuple[str, list[str]]]:
    """(what, ctrl-bench arguments) of every run of the check."""
    from baselines import method_names

    methods = args.methods or method_names()
    runs = []
    for scenario in args.scenarios:
        for method in methods:
            runs.append((f"{method} on {scenario}, 1 epoch per experience",
                         ["--scenario", scenario, "--methods", method, "--epochs", "1", "--first-epochs", "1",
                          "--device", args.device, "--no-progress"]))
    for backbone in () if args.skip_paper else ("crate", "conv"):
        runs.append((f"ctrl paper preset, first experience, {backbone}",
                     ["--scenario", args.scenarios[0], "--methods", "ctrl", "--preset", "paper", "--backbone", backbone,
                      "--n-experiences", "5", "--device", args.device, "--no-progress",
                      *(["--epochs", "1"] if args.quick else [])]))
    return runs


class DeviceCheck:
    """An Avalanche plugin that notes when a minibatch's output or the model is off the run's device."""

    def __init__(self, device):
        import torch

        self.device, self.problems = torch.device(device), []

    def _check(self, strategy, where):
        out = getattr(strategy, "mb_output", None)
        if out is not None and hasattr(out, "device") and out.device.type != self.device.type:
            self.problems.append(f"{where}: output on {out.device}")
        for name, p in strategy.model.named_parameters():
            if p.device.type != self.device.type:
                self.problems.append(f"{where}: parameter {name} on {p.device}")
                break

    def after_training_iteration(self, strategy, **kwargs):
        self._check(strategy, "training")

    def after_eval_iteration(self, strategy, **kwargs):
        self._check(strategy, "evaluation")

    def __getattr__(self, name):
        if name.startswith(("before_", "after_")):
            return lambda *a, **k: None
        raise AttributeError(name)


class FirstExperienceOnly(Exception):
    """Raised after the first experience's checkpoint: the paper-preset runs time that one only."""


def run_one(argv: list[str], device: str, out: str, first_only: bool) -> dict:
    import torch

    from ctrl_bench.harness import cli, runner

    check = DeviceCheck(device)
    real_run_method, real_save = runner.run_method, runner.save_checkpoint

    def run_method(*a, extra_plugins=(), **k):
        return real_run_method(*a, extra_plugins=[*extra_plugins, check], **k)

    def save(path, rows, *rest):
        real_save(path, rows, *rest)
        if first_only:
            raise FirstExperienceOnly

    runner.run_method, runner.save_checkpoint = run_method, save
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        code = cli.main([*argv, "--out", out])
        error = None if code == 0 else f"exit code {code}"
    except FirstExperienceOnly:
        error = None
    except SystemExit as err:
        error = f"exit code {err.code}"
    except Exception as err:  # noqa: BLE001  (the check reports every failure and goes on)
        error = f"{type(err).__name__}: {err}"
    finally:
        runner.run_method, runner.save_checkpoint = real_run_method, real_save
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return {"seconds": seconds, "peak_gib": peak, "error": error, "device_problems": sorted(set(check.problems))[:3]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS, help="the two subsets by default")
    p.add_argument("--methods", nargs="+", help="default: every method")
    p.add_argument("--quick", action="store_true", help="the paper-preset runs at 1 epoch too (a dry run)")
    p.add_argument("--skip-paper", action="store_true", help="leave out the paper-preset runs")
    p.add_argument("--print-commands", action="store_true", help="print the ctrl-bench commands and exit")
    args = p.parse_args()
    args.scenarios = [s for s in args.scenarios if not s.startswith("npz:") or os.path.exists(s[4:])]
    runs = commands(args)
    if args.print_commands:
        for what, argv in runs:
            print(f"# {what}\nctrl-bench {shlex.join(argv)}")
        return 0
    import torch

    print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}; torch {torch.__version__}")
    print("| run | seconds | peak GPU memory (GiB) | result |\n|---|---|---|---|")
    failures = 0
    for what, argv in runs:
        with tempfile.TemporaryDirectory() as out:
            result = run_one(argv, args.device, out, first_only="paper preset" in what)
        problem = result["error"] or "; ".join(result["device_problems"])
        failures += bool(problem)
        print(f"| {what} | {result['seconds']:.1f} | {result['peak_gib']:.2f} | {'FAILURE: ' + problem if problem else 'ok'} |",
              flush=True)
    print(json.dumps({"runs": len(runs), "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
