#!/usr/bin/env python3
"""Whether i-CTRL's memory or its encoder's features limit it: classifiers fitted at the end of a run.

Trains i-CTRL on a scenario's validation split (``--validation``, never its test set) with ctrl's quick
preset for the scenario's family (the harness's settings, ``--option NAME=VALUE`` on top), then scores
on that split, per experience's classes, classifiers built on the final encoder's features:
- the memory's (the run's own classifier, from the stored statistics only);
- the same kind refitted on the real training images of every class (the paper's protocol, an oracle);
- a linear probe: multinomial logistic regression on those real features, standardised (an oracle), and
  a nonlinear one: the 10 nearest of them by cosine (an oracle);
- the same probe fitted on prototypes drawn from the memory (exemplar-free, as FeTrIL's pseudo-features).

If the oracles score no higher than the memory, the statistics are not what limits the run: its
features of the classes are.

    python benchmarks/linear_probe.py --scenario npz:../shared/data/cifar10-subset.npz --seed 0
"""

import time

import avalanche.core  # noqa: F401  (avalanche's modules import each other in this order)
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ctrl_bench.subspace import NearestSubspaceClassifier
import validation_split


def features(strategy, stream):
    parts = [strategy.features(experience.dataset.eval()) for experience in stream]
    return torch.cat([z.cpu() for z, _ in parts]), torch.cat([y.cpu() for _, y in parts])


def main() -> None:
    args, chosen, data, scenario = validation_split.parse(__doc__)
    strategy, options = validation_split.quick_ictrl(data, scenario, chosen)
    print(f"{args.scenario}, {data.n_experiences} experiences, validation {args.validation}, seed {args.seed}; "
          f"options: {options}", flush=True)
    start = time.time()
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    print(f"trained in {time.time() - start:.0f} s", flush=True)
    experience_of = {int(c): i for i, e in enumerate(scenario.benchmark.train_stream)
                     for c in e.classes_in_this_experience}
    Z_train, y_train = features(strategy, scenario.benchmark.train_stream)
    Z_eval, y_eval = features(strategy, scenario.benchmark.test_stream)
    groups = torch.tensor([experience_of[int(c)] for c in y_eval])

    def report(name, predicted):
        right = torch.as_tensor(np.asarray(predicted)).long() == y_eval
        per = " ".join(f"{right[groups == i].float().mean():.2f}" for i in range(data.n_experiences))
        print(f"  {name:58s} {right.float().mean():.3f}   per experience: {per}", flush=True)

    report("memory (the run's classifier)", strategy.scores(Z_eval.to(strategy.device)).argmax(1).cpu())
    config = strategy.config
    refit = NearestSubspaceClassifier(noise=config.classifier_noise, class_spread=config.class_spread)
    refit.fit(Z_train, y_train, config.n_components)
    report("the same, refitted on real features (oracle)", refit.scores(Z_eval, scenario.n_classes).argmax(1))
    def linear_probe():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))

    probe = linear_probe().fit(Z_train.numpy(), y_train.numpy())
    report("logistic regression on real features (oracle)", probe.predict(Z_eval.numpy()))
    neighbours = KNeighborsClassifier(n_neighbors=10, metric="cosine").fit(Z_train.numpy(), y_train.numpy())
    report("10 nearest real features, cosine (oracle, nonlinear)", neighbours.predict(Z_eval.numpy()))
    Z_memory, y_memory = strategy.memory.sample(generator=torch.Generator(strategy.device).manual_seed(args.seed))
    drawn = linear_probe().fit(Z_memory.cpu().numpy(), y_memory.cpu().numpy())
    report("logistic regression on prototypes from memory", drawn.predict(Z_eval.numpy()))


if __name__ == "__main__":
    main()
