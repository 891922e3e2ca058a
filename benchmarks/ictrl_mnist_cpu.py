#!/usr/bin/env python3
"""i-CTRL on the 5,000-image MNIST subset, 5 experiences of 2 classes, on the CPU.

For the CRATE and the conv networks, with the memory-only classifier and beside it the paper's
protocol (classifier refit on real training images: an oracle), prints last and average incremental
accuracy, memory size and wall time. Uses the quick preset.

    python benchmarks/ictrl_mnist_cpu.py --out runs/ictrl-cpu
"""

import argparse
import json
import os

from ctrl_bench.harness import RunConfig, run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="mnist_5k", help="a scenario name or npz:PATH (default: mnist_5k)")
    p.add_argument("--out", default="runs/ictrl-cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = []
    for arch in ("conv", "crate"):
        for classifier in ("memory", "paper"):
            out = os.path.join(args.out, f"{arch}-{classifier}")
            run(RunConfig(scenarios=(args.scenario,), methods=("ctrl",), seeds=(args.seed,), device="cpu",
                          overrides={"backbone": arch}, method_options={"ctrl": {"classifier": classifier}},
                          out=out, progress=False, command="benchmarks/ictrl_mnist_cpu.py"))
            with open(os.path.join(out, "results.json")) as fh:
                rows.append((arch, classifier, json.load(fh)["runs"][0]))
    print("\n| network | classifier | Last | Avg | memory | wall time (s) |\n|---|---|---|---|---|---|")
    for arch, classifier, record in rows:
        print(f"| {arch} | {classifier} | {record['last_accuracy']:.3f} | {record['average_incremental_accuracy']:.3f} | "
              f"{record['memory_budget']} | {record['wall_seconds']:.0f} |")


if __name__ == "__main__":
    main()
