#!/usr/bin/env python3
"""i-CTRL on the 5,000-image MNIST subset, 5 experiences of 2 classes, on the CPU.

For the CRATE and the conv networks, with the memory-only classifier and beside it the paper's
protocol (classifier refit on real training images), prints last and average incremental accuracy,
memory size and wall time. Uses the quick preset of run_bench.py; extra arguments go to run_bench.

    python benchmarks/ictrl_mnist_cpu.py --data ../shared/data/mnist-5k.npz --out runs/ictrl-cpu
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import run_bench  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/mnist-5k.npz")
    p.add_argument("--out", default="runs/ictrl-cpu")
    p.add_argument("--seed", type=int, default=0)
    args, extra = p.parse_known_args()
    rows = []
    for arch in ("conv", "crate"):
        for classifier in ("memory", "paper"):
            out = os.path.join(args.out, f"{arch}-{classifier}")
            run_bench.main(["--scenario", f"npz:{args.data}", "--methods", "ctrl", "--seeds", str(args.seed),
                            "--device", "cpu", "--backbone", arch, "--ctrl-classifier", classifier, "--out", out,
                            "--no-progress", *extra])
            with open(os.path.join(out, "results.json")) as fh:
                run = json.load(fh)["runs"][0]
            rows.append((arch, classifier, run))
    print("\n| network | classifier | Last | Avg | memory | wall time (s) |\n|---|---|---|---|---|---|")
    for arch, classifier, run in rows:
        print(f"| {arch} | {classifier} | {run['last_accuracy']:.3f} | {run['average_incremental_accuracy']:.3f} | "
              f"{run['memory_budget']} | {run['wall_seconds']:.0f} |")


if __name__ == "__main__":
    main()
