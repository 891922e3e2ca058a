#!/usr/bin/env python3
"""How far f's drift takes the old classes' statistics, and how well the drift map predicts it.

Trains i-CTRL (the quick preset's pair: CRATE tiny, d = 128, batch 256) on a scenario's validation
split (``--validation``, never its test set), and prints after every later experience, over the old
classes' real training images:
- how far their mean feature moved (‖μ_end − μ_start‖, averaged over the old classes), and how far the
  anchors (decoded old-class images) and the experience's new images moved;
- the error left when the start means are moved by the linear map of the drift fitted on the new
  images and the anchors (``drift_map``'s W, at each ``--ridge`` λ), and by SDC's mean shift (σ = 0.3).

The run itself trains with ``--option NAME=VALUE`` (an ICTRL option; the defaults otherwise), so the
map measured is the one of a run without it by default: ``--option drift_map=0``.

    python benchmarks/drift_fit.py --scenario shapes:40 --experiences 10 --option drift_map=0
"""

import argparse

import avalanche.core  # noqa: F401  (avalanche's modules import each other in this order)
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import Subset

from ctrl_bench import ICTRL, build_autoencoder
from ctrl_bench.memory import drift_map, semantic_drift
import validation_split


class DriftWatch(SupervisedPlugin):
    """Per later experience: the old classes' real mean drift, and what the map and SDC predict of it."""

    def __init__(self, images_by_class: dict, ridges: list[float]):
        super().__init__()
        self.images_by_class, self.ridges = images_by_class, ridges

    def _means(self, strategy, classes):
        return torch.stack([strategy.features(self.images_by_class[c])[0].mean(0) for c in classes])

    def before_training_exp(self, strategy, **kwargs):
        self.old = [c for c in strategy.memory.classes if c in self.images_by_class]
        if self.old:
            self.means_before = self._means(strategy, self.old)
            self.new_before = strategy.features(strategy.experience.dataset.eval())[0]
            self.anchors = strategy.replay_plugin.anchors  # (images, codes, labels, features at the start)

    def after_training_exp(self, strategy, **kwargs):
        if not self.old:
            return
        means_after = self._means(strategy, self.old)
        new_after = strategy.features(strategy.experience.dataset.eval())[0]
        images, _, _, anchors_before = self.anchors
        with torch.no_grad(), strategy.evaluating():
            anchors_after = strategy.encode(images)
        moved = (means_after - self.means_before).norm(dim=1).mean()
        line = [f"experience {strategy.clock.train_exp_counter}: old means moved {moved:.3f} "
                f"(anchors {(anchors_after - anchors_before).norm(dim=1).mean():.3f}, "
                f"new images {(new_after - self.new_before).norm(dim=1).mean():.3f}); error left:"]
        before, after = torch.cat([self.new_before, anchors_before]), torch.cat([new_after, anchors_after])
        for ridge in self.ridges:
            mapped = self.means_before @ drift_map(before, after, ridge)
            line.append(f"map λ={ridge:g} {(mapped - means_after).norm(dim=1).mean():.3f}")
        shifted = self.means_before + semantic_drift(self.new_before, new_after, self.means_before, 0.3)
        line.append(f"SDC σ=0.3 {(shifted - means_after).norm(dim=1).mean():.3f}")
        print(" ".join(line), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="shapes:40", help="a scenario name (default: shapes:40)")
    p.add_argument("--experiences", type=int, default=10, help="experiences (default: 10)")
    p.add_argument("--ridge", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="λ of the maps measured")
    validation_split.add_arguments(p)
    args = p.parse_args()
    options, data, scenario = validation_split.load(args, args.experiences)
    images_by_class = {}
    for experience in scenario.benchmark.train_stream:
        dataset = experience.dataset.eval()
        targets = torch.as_tensor(list(dataset.targets))
        for c in targets.unique().tolist():
            images_by_class[c] = Subset(dataset, (targets == c).nonzero().squeeze(1).tolist())
    f, g = build_autoencoder("crate", scenario.image_shape, feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
                     plugins=[DriftWatch(images_by_class, args.ridge)], num_classes=scenario.n_classes, **options)
    print(f"{args.scenario}, {args.experiences} experiences, validation {args.validation}, seed {args.seed}; "
          f"options: {options or 'the defaults'}")
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    results = strategy.eval(scenario.benchmark.test_stream)
    print(f"Last on the validation split: {results['Top1_Acc_Stream/eval_phase/test_stream/Task000']:.3f}")


if __name__ == "__main__":
    main()
