#!/usr/bin/env python3
"""Where the first of several classes learnt one at a time goes: generated strokes, one class an
experience, ICTRL's defaults (or ``--option NAME=VALUE``). Prints, after every experience, the first
class's test accuracy; in every later experience, how far f moved the old classes' anchors (decoded at
its start) and the first class's real training images (mean cosine, before → after), and the anchors'
drift term of its first epochs; at the end, the first class's accuracy when its statistics are refitted
on its real training images with the final f (an oracle: was the class forgotten by f, or only by the
memory?).

    python benchmarks/lone_class_drift.py --data-seed 4
    python benchmarks/lone_class_drift.py --data-seed 4 --option encoder_restart=0   # Adam's moments kept
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

import baselines
from ctrl_bench import ICTRL, build_autoencoder
from ctrl_bench.ictrl.config import FIELDS
from scenarios import build_scenario
from scenarios.synthetic import make_strokes


def parse_option(text: str) -> tuple[str, object]:
    """NAME=VALUE, read as the harness reads --option ctrl.NAME=VALUE."""
    try:
        _, name, value = baselines.parse_option(f"ctrl.{text}")
    except baselines.MethodError as err:
        raise SystemExit(str(err)) from None
    if name not in FIELDS:  # the harness's own options (epochs, batch_size, …) are not ICTRL's
        raise SystemExit(f"{name} is not an ICTRL option; known: {', '.join(FIELDS)}")
    return name, value


class FirstClassWatch(SupervisedPlugin):
    """Per later experience: the anchors' and the first class's real images' cosine to their features
    at the experience's start, and the anchor drift term of the first epochs."""

    def __init__(self, first_train, epochs_shown: int):
        super().__init__()
        self.first_train, self.epochs_shown = first_train, epochs_shown
        self.anchors = self.real_before = None
        self.drifts = []

    def before_training_exp(self, strategy, **kwargs):
        self.anchors, self.drifts = strategy.replay_plugin.anchors, []
        self.real_before = strategy.features(self.first_train)[0] if self.anchors is not None else None

    def after_training_epoch(self, strategy, **kwargs):
        if self.anchors is not None and len(self.drifts) < self.epochs_shown:
            self.drifts.append(strategy.last_epoch_terms.get("anchor_drift", float("nan")))

    def after_training_exp(self, strategy, **kwargs):
        if self.anchors is None:
            return
        images, _, _, before = self.anchors
        with torch.no_grad(), strategy.evaluating():
            after = strategy.encoder(images).float()
        real_after = strategy.features(self.first_train)[0]
        print(f"   anchors' features: cos {F.cosine_similarity(after, before).mean():.3f} to the start; the first "
              f"class's real images: cos {F.cosine_similarity(real_after, self.real_before).mean():.3f}; anchor drift "
              f"term, epochs 0..{len(self.drifts) - 1}: {' '.join(f'{d:.3f}' for d in self.drifts)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=6, help="classes, one an experience (default: 6)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated training images (test: +1)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="an ICTRL option")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    options = dict(parse_option(o) for o in args.option)
    x_train, y_train = make_strokes(args.classes, 200, seed=args.data_seed)
    x_test, y_test = make_strokes(args.classes, 50, seed=args.data_seed + 1)
    npz = Path(tempfile.mkdtemp()) / "strokes.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    torch.manual_seed(0)
    scenario = build_scenario(f"npz:{npz}", n_experiences=args.classes, seed=0)
    first_train = scenario.benchmark.train_stream[0].dataset.eval()
    first_test = scenario.benchmark.test_stream[0].dataset.eval()
    f, g = build_autoencoder("crate", (1, 28, 28), feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
                     plugins=[FirstClassWatch(first_train, epochs_shown=3)], **options)
    print(f"options: {options or 'the defaults'}; data seed {args.data_seed}")
    for i, experience in enumerate(scenario.benchmark.train_stream):
        strategy.train(experience)
        Z, y = strategy.features(first_test)
        print(f"after experience {i + 1}: the first class's test accuracy {(strategy.scores(Z).argmax(1) == y).float().mean():.2f}")
    Z_train, y_train_first = strategy.features(first_train)
    strategy.memory.store(Z_train, y_train_first)
    strategy.memory_plugin.fit_from_memory()  # as after an experience
    Z, y = strategy.features(first_test)
    print(f"its statistics refitted on its real training images with the final f (oracle): "
          f"{(strategy.scores(Z).argmax(1) == y).float().mean():.2f}")


if __name__ == "__main__":
    main()
