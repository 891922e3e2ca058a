#!/usr/bin/env python3
"""``ICTRL`` with its defaults, ``train_epochs=30``, on the first two experiences of a scenario (default:
the MNIST subset, 2 classes each), at several batch sizes: the accuracy on the first experience's
classes after the first experience and after the second. Retention that needs many steps shows here
as a collapse at large batches (few steps an experience). The first experience runs at least
``--first-steps`` steps (default 120; its epochs extended at a large batch, set through
``strategy.train_epochs`` as the harness's runner sets its budget's ``first_epochs``; 0: ``--epochs``).

    python benchmarks/first_classes_by_batch.py                    # batches 64 128 256 512, seed 0
    python benchmarks/first_classes_by_batch.py --batches 64 512 --seed 1 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from ctrl_bench import ICTRL, build_autoencoder
from scenarios import build_scenario

FIRST = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"


def first_classes(scenario_name: str, batch: int, seed: int, epochs: int,
                  first_steps: int = 120) -> tuple[float, float, int, float]:
    """(accuracy on experience 0's classes after it, after experience 1, steps in experience 0, seconds)."""
    torch.manual_seed(seed)
    scenario = build_scenario(scenario_name, n_experiences=5, seed=seed)
    f, g = build_autoencoder("crate", scenario.image_shape, feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
                     train_epochs=epochs, train_mb_size=batch)
    first_test = scenario.benchmark.test_stream[0]
    start, after = time.perf_counter(), []
    for i, experience in enumerate(scenario.benchmark.train_stream[:2]):
        steps_per_epoch = -(-len(experience.dataset) // batch)
        strategy.train_epochs = max(epochs, -(-first_steps // steps_per_epoch)) if i == 0 else epochs
        strategy.train(experience)
        after.append(float(strategy.eval([first_test])[FIRST]))
        if len(after) == 1:
            steps = strategy.clock.train_iterations
    return after[0], after[1], steps, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="mnist_5k", help="a scenario name or npz:PATH (default: mnist_5k)")
    p.add_argument("--batches", nargs="+", type=int, default=[64, 128, 256, 512])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--first-steps", type=int, default=120,
                   help="the first experience runs at least this many steps (default 120; 0: --epochs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.scenario}, ICTRL defaults, {args.epochs} epochs (the first at least {args.first_steps} steps), "
          f"seed {args.seed}")
    print("| batch | steps in the first experience | first classes after it | after the second | s |")
    print("|---|---|---|---|---|")
    for batch in args.batches:
        before, after, steps, seconds = first_classes(args.scenario, batch, args.seed, args.epochs, args.first_steps)
        print(f"| {batch} | {steps} | {before:.3f} | {after:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
