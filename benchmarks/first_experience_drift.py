#!/usr/bin/env python3
"""Where the first experience's classes go. Trains i-CTRL on a scenario's validation split (never its
test set) with ctrl's quick preset (``--option NAME=VALUE`` on top) and prints, after every experience,
for the first experience's classes:
- their held-out accuracy with the run's classifier, and with their statistics refitted on their real
  training images under the current f (an oracle: forgotten by f, or only by the memory?);
- how far f moved, over the experience, the old classes' anchors (decoded at its start) and the first
  classes' real training images: mean cosine of each feature to its value at the start;
- how far their stored statistics are from those of their real features now: the mean cosine of the
  stored means to the real means, and the share of the real features' spread (about the stored means)
  that lies in their first ``n_components`` stored directions, beside the same with refitted ones.

    python benchmarks/first_experience_drift.py --scenario shapes:40 --experiences 10
"""

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin

import validation_split


def spread_held(Z: torch.Tensor, y: torch.Tensor, classes: list[int], means: torch.Tensor,
                directions: torch.Tensor) -> float:
    """The share of the classes' features' spread about their means that lies in their directions:
    Σ_c Σ_{i: y_i = c} ‖(z_i − μ_c) U_cᵀ‖² / Σ_c Σ_{i: y_i = c} ‖z_i − μ_c‖², with ``means[j]`` = μ_c and
    ``directions[j]`` = U_c (orthonormal rows) for c = ``classes[j]``."""
    held = total = 0.0
    for mean, U, c in zip(means, directions, classes):
        D = Z[y == c] - mean
        held += (D @ U.T).square().sum().item()
        total += D.square().sum().item()
    return held / total


class FirstClassesWatch(SupervisedPlugin):
    """Per experience: the first experience's classes, as the module's docstring says."""

    def __init__(self, first_train, first_eval):
        super().__init__()
        self.first_train, self.first_eval = first_train, first_eval
        self.classes = None
        self.experiences = 0
        self.real_before = self.anchors = None

    def before_training_exp(self, strategy, **kwargs):
        self.real_before = strategy.features(self.first_train)[0] if self.classes is not None else None
        self.anchors = None

    def before_training_epoch(self, strategy, **kwargs):
        if self.anchors is None:  # decoded by the replay plugin when the experience started
            self.anchors = strategy.replay_plugin.anchors

    def after_training_exp(self, strategy, **kwargs):
        self.experiences += 1
        Z_train, y_train = strategy.features(self.first_train)
        Z_eval, y_eval = strategy.features(self.first_eval)
        if self.classes is None:
            self.classes = sorted(set(y_train.tolist()))
        memory, k = strategy.memory, strategy.config.n_components
        rows = memory._rows(torch.tensor(self.classes, device=memory.labels.device))
        real_means = torch.stack([Z_train[y_train == c].mean(0) for c in self.classes]).to(memory.means)
        parts = [f"accuracy {self._accuracy(strategy, Z_eval, y_eval):.2f}",
                 f"stored means' cos to the real means {F.cosine_similarity(memory.means[rows], real_means).mean():.3f}"]

        def held():
            return spread_held(Z_train, y_train, self.classes, memory.means[rows], memory.directions[rows, :k])

        before = held()
        saved = {name: value.clone() for name, value in memory.state_dict().items()}
        memory.store(Z_train, y_train)  # the oracle: their statistics refitted on their real images
        strategy.memory_plugin.fit_from_memory()
        parts.append(f"spread held by their first {k} stored directions {before:.2f} (refitted: {held():.2f})")
        parts.append(f"accuracy refitted (oracle) {self._accuracy(strategy, Z_eval, y_eval):.2f}")
        memory.load_state_dict(saved)
        strategy.memory_plugin.fit_from_memory()
        if self.real_before is not None:
            parts.append(f"real images' cos to the start {F.cosine_similarity(Z_train, self.real_before).mean():.3f}")
        if self.anchors is not None:
            with torch.no_grad(), strategy.evaluating():
                after = strategy.encoder(self.anchors[0]).float()
            parts.append(f"anchors' cos to the start {F.cosine_similarity(after, self.anchors[3]).mean():.3f}")
        print(f"experience {self.experiences}: " + "; ".join(parts), flush=True)

    @staticmethod
    def _accuracy(strategy, Z, y) -> float:
        return (strategy.scores(Z).argmax(1) == y).float().mean().item()


def main() -> None:
    args, chosen, data, scenario = validation_split.parse(__doc__)
    first_train = scenario.benchmark.train_stream[0].dataset.eval()
    first_eval = scenario.benchmark.test_stream[0].dataset.eval()
    strategy, _ = validation_split.quick_ictrl(data, scenario, chosen, [FirstClassesWatch(first_train, first_eval)])
    print(f"{args.scenario}, {data.n_experiences} experiences, validation {args.validation}, seed {args.seed}; "
          f"options: {chosen or 'the defaults'}", flush=True)
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)


if __name__ == "__main__":
    main()
