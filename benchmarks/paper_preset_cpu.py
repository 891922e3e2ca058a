#!/usr/bin/env python3
"""How long the ``paper`` preset takes: one epoch of every experience of ctrl on the MNIST subset,
timed on this machine, for the CRATE pair and the ``--backbone conv`` reference variant, and the
wall time of the whole preset extrapolated from it (each experience: its evaluation and memory
upkeep once, plus its one epoch times the preset's epochs).

    python benchmarks/paper_preset_cpu.py                 # CPU, the shipped MNIST subset
    python benchmarks/paper_preset_cpu.py --device cuda --scenario npz:../shared/data/cifar10-subset.npz
"""

from __future__ import annotations

import argparse
import tempfile

import torch


def main():
    from ctrl_bench.harness.cells import cell_settings
    from ctrl_bench.harness.config import RunConfig
    from ctrl_bench.harness.presets import common_settings
    from ctrl_bench.harness.runner import run_cell
    from scenarios import load_data, make_scenario

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="mnist_5k")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_data(args.scenario)
    scenario = make_scenario(data, seed=0)
    print(f"{args.scenario} on {device} ({args.threads} threads): ctrl, paper preset, 1 epoch per experience")
    print("| pair | seconds per epoch, by experience | evaluation and upkeep (s) | paper epochs | extrapolated wall "
          "time (h) |\n|---|---|---|---|---|")
    for backbone in ("crate", "conv"):
        config = RunConfig(scenarios=(args.scenario,), methods=("ctrl",), preset="paper", threads=args.threads,
                           overrides={"backbone": backbone, "epochs": 1, "first_epochs": 1})
        settings = cell_settings(config, data, "ctrl", device)
        epochs = common_settings("paper", {"backbone": backbone}, data.family)["epochs"]
        with tempfile.TemporaryDirectory() as out:
            record = run_cell("ctrl", 0, scenario, settings, device, f"{out}/c.pt", None, progress=False)
        loops = record["loop_seconds_per_experience"]  # one epoch per experience: its loop's seconds
        rest = [total - epoch for total, epoch in zip(record["experience_seconds"], loops)]
        hours = sum(r + t * epochs for r, t in zip(rest, loops)) / 3600
        print(f"| {backbone} | {', '.join(f'{t:.1f}' for t in loops)} | {sum(rest):.1f} | {epochs} | "
              f"{hours:.2f} |", flush=True)


if __name__ == "__main__":
    main()
