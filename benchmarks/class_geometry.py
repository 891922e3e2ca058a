#!/usr/bin/env python3
"""Where i-CTRL's classes sit in feature space, experience by experience, and how far each old class's
real images have moved from what its memory says.

``ICTRL`` with its defaults (``--option NAME=VALUE`` changes one; ``train_epochs=30``, batch 256, the quick
preset's) on the first ``--experiences`` experiences of a scenario, on the training images of a
``--validation`` split (so that choosing from it reads no test image). After each experience, for every
class in memory:

- ``var``: the total variance of its stored features, tr Σ_c = 1 − ‖μ_c‖² for unit features near their mean;
- ``in r``: the share of it in the r stored directions (what replay and the classifier see);
- ``erank``: the effective rank exp(H(p)) of the stored variances, p_i = σ²_i / Σ σ²;
- ``drift``: ‖μ_c − μ_c^now‖, the distance of the stored mean from the mean of the class's real
  training images under f now (what the memory-only classifier cannot see, and an oracle refit does);
- ``off``: the share of the variance of those real features around the stored mean that lies off
  the stored subspace;

and the largest |cos| between two stored means. MCR²'s structure is classes in near-orthogonal
subspaces: means near 0 and far from aligned, each class spread over many directions.

    python benchmarks/class_geometry.py                                  # mnist_5k, 10 splits, 4 experiences
    python benchmarks/class_geometry.py --n-experiences 5 --experiences 3
    python benchmarks/class_geometry.py --experiences 10 --option drift_map=0   # the statistics left as stored
"""

from __future__ import annotations

import argparse

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from baselines import parse_option
from ctrl_bench import ICTRL, build_autoencoder
from scenarios.registry import load_data, make_scenario


def class_rows(strategy, real: dict[int, torch.Tensor]) -> list[str]:
    """One table row per class in memory (see the module docstring); ``real``: class → its training
    images' features under f now."""
    memory, rows = strategy.memory, []
    r = memory.n_directions
    for i, c in enumerate(memory.classes):
        mean, directions, variances = memory.means[i], memory.directions[i], memory.variances[i]
        total = float(variances.sum() + memory.residuals[i] * (mean.numel() - r))
        p = variances / variances.sum()
        erank = float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
        Z = real[c]
        centred = Z - mean
        inside = centred @ directions.T
        off = 1 - float(inside.pow(2).sum() / centred.pow(2).sum())
        drift = float((mean - Z.mean(0)).norm())
        rows.append(f"| {c} | {total:.3f} | {float(variances.sum()) / total:.2f} | {erank:.1f} | {drift:.3f} | {off:.2f} |")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="mnist_5k", help="a scenario name or npz:PATH (default: mnist_5k)")
    p.add_argument("--n-experiences", type=int, default=10)
    p.add_argument("--experiences", type=int, default=4, help="how many of them to train (default 4)")
    p.add_argument("--validation", type=float, default=0.1, help="share of each class held out (default 0.1)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="an ICTRL option, as --option ctrl.NAME=VALUE takes it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(parse_option(f"ctrl.{text}")[1:] for text in args.option)  # as --option ctrl.NAME=VALUE reads it
    torch.manual_seed(args.seed)
    scenario = make_scenario(load_data(args.scenario, args.n_experiences, validation=args.validation), args.seed)
    f, g = build_autoencoder("crate", scenario.image_shape, feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
                     train_epochs=30, train_mb_size=256, **options)
    seen = []
    print(f"{args.scenario}, {args.n_experiences} experiences, ICTRL defaults{' with ' + str(options) if options else ''}, "
          f"seed {args.seed}")
    for experience in scenario.benchmark.train_stream[: args.experiences]:
        strategy.train(experience)
        seen.append(experience.dataset.eval())
        real = {}
        for dataset in seen:
            Z, y = strategy.features(dataset)
            real.update({int(c): Z[y == c] for c in torch.unique(y)})
        means = torch.nn.functional.normalize(strategy.memory.means, dim=1)
        cos = (means @ means.T).abs().fill_diagonal_(0)
        print(f"\nafter experience {experience.current_experience} (largest |cos| between stored means "
              f"{float(cos.max()):.2f})")
        print("| class | var | in r | erank | drift | off |")
        print("|---|---|---|---|---|---|")
        print("\n".join(class_rows(strategy, real)), flush=True)


if __name__ == "__main__":
    main()
