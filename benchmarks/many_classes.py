#!/usr/bin/env python3
"""Long sequences of many classes on generated data (``synthetic:K``: strokes that classes share, no
download): i-CTRL beside iCaRL at the quick preset's budget. Prints, per method and seed, the
training seconds per step of every experience (flat when a step's cost does not grow with the old
classes), the accuracy on the first experience's classes after it and at the end, and Last.

    python benchmarks/many_classes.py                        # 40 classes in 10 experiences, seed 0
    python benchmarks/many_classes.py --classes 40 --experiences 20 --seeds 0 1 2 --out runs/many
"""

from __future__ import annotations

import argparse
import json
import os

from ctrl_bench.harness import RunConfig, run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--experiences", type=int, default=10)
    p.add_argument("--methods", nargs="+", default=["ctrl", "icarl"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/many-classes")
    p.add_argument("--option", action="append", default=[], help="METHOD.NAME=VALUE, as ctrl-bench's")
    args = p.parse_args()
    from ctrl_bench.harness.cli import parse_method_options

    scenario = f"synthetic:{args.classes}"
    run(RunConfig(scenarios=(scenario,), methods=tuple(args.methods), seeds=tuple(args.seeds),
                  n_experiences=args.experiences, threads=args.threads, out=args.out, progress=False,
                  method_options=parse_method_options(args.option, args.methods),
                  command="benchmarks/many_classes.py " + " ".join(os.sys.argv[1:])))
    with open(os.path.join(args.out, "results.json")) as fh:
        runs = [r for r in json.load(fh)["runs"] if r["scenario"] == f"synthetic{args.classes}-{args.experiences}"]
    print(f"\n{scenario}, {args.experiences} experiences, quick preset. Seconds per step: the training loop's "
          "seconds (the steps and their data loading) over its steps, in the first experience (no old classes, "
          "nothing replayed), the second (the first with old classes) and the last. Upkeep: the rest of the "
          "experience's training seconds (memory stored, anchors decoded), in the first and the last")
    print("| method | seed | s/step: first, second → last | last / second | last / first | upkeep s: first, last "
          "| first classes: after them → at the end | Last |\n|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["method"], r["seed"])):
        loops, steps = r["loop_seconds_per_experience"], r["steps_per_experience"]
        per_step = [t / max(s, 1) for t, s in zip(loops, steps)]
        upkeep = [t - loop for t, loop in zip(r["train_seconds_per_experience"], loops)]
        first = [row[0] for row in r["accuracy_matrix"]]
        print(f"| {r['method']} | {r['seed']} | {per_step[0]:.3f}, {per_step[1]:.3f} → {per_step[-1]:.3f} | "
              f"{per_step[-1] / per_step[1]:.2f} | {per_step[-1] / per_step[0]:.2f} | {upkeep[0]:.1f}, {upkeep[-1]:.1f} | "
              f"{first[0]:.2f} → {first[-1]:.2f} | {r['last_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
