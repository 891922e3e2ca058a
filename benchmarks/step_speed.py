#!/usr/bin/env python3
"""Seconds per i-CTRL game step on this machine: one forward of the game (:func:`game_step`) and both
players' gradients, the tiny CRATE pair at its defaults (the recipe's step parts on, as the strategy
plays them), a new batch of one class, a replay of half a batch spread over the old classes, for a few
numbers of class ids and old classes. Prints the median of ``--repeats`` rounds.

    python benchmarks/step_speed.py --threads 1
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/step_speed.py --threads 1   # the same, older code
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ctrl_bench import build_autoencoder
from ctrl_bench.ictrl.config import ICTRLConfig
from ctrl_bench.ictrl.step import ClassMasks, Replay, game_step

try:
    from ctrl_bench.ictrl.recipe import step_parts
except ImportError:  # an older checkout (PYTHONPATH): its game_step reads the recipe's terms from the config
    step_parts = None

CASES = ((11, 5), (40, 7), (40, 30))  # (class ids, old classes): MNIST in 10 splits; 40 classes early and late


def step_seconds(num_classes: int, n_old: int, batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    f, g = build_autoencoder("crate", (1, 28, 28), 128, "tiny")
    n_replay = batch // 2
    X, y = torch.rand(batch, 1, 28, 28) * 2 - 1, torch.full((batch,), n_old)
    replay = Replay(F.normalize(torch.randn(n_replay, 128), dim=1), torch.arange(n_replay) % n_old,
                    torch.rand(n_replay, 1, 28, 28) * 2 - 1, F.normalize(torch.randn(n_replay, 128), dim=1))
    new, old = torch.zeros(num_classes, dtype=torch.bool), torch.zeros(num_classes, dtype=torch.bool)
    new[n_old], old[:n_old] = True, True
    config = ICTRLConfig()
    parts = {"parts": step_parts(config)} if step_parts else {}

    def step():
        result = game_step(f, g, X, y, replay, ClassMasks(new, old), config, 1.0, **parts)
        torch.autograd.grad(result.encoder_loss, list(f.parameters()), retain_graph=True)
        torch.autograd.grad(result.decoder_loss, list(g.parameters()))

    step()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(3):
            step()
        rounds.append((time.perf_counter() - start) / 3)
    return statistics.median(rounds)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"tiny CRATE pair, batch {args.batch} + {args.batch // 2} replayed, {args.threads} thread(s), CPU")
    print("| class ids | old classes | s/step |\n|---|---|---|")
    for num_classes, n_old in CASES:
        print(f"| {num_classes} | {n_old} | {step_seconds(num_classes, n_old, args.batch, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
