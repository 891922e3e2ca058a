"""What the benchmarks that train i-CTRL on a scenario's validation split share: their command-line
arguments, the scenario they load (never its test set) and i-CTRL as the harness's quick preset builds it."""

import argparse

import avalanche.core  # noqa: F401  (avalanche's modules import each other in this order)
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

import baselines
from baselines import ctrl
from ctrl_bench import ICTRL, build_autoencoder
from ctrl_bench.ictrl.config import FIELDS
from scenarios.labels import ScenarioError
from scenarios.registry import load_data, make_scenario


def parse_option(text: str) -> tuple[str, object]:
    """NAME=VALUE, read as the harness reads --option ctrl.NAME=VALUE."""
    try:
        _, name, value = baselines.parse_option(f"ctrl.{text}")
    except baselines.MethodError as err:
        raise SystemExit(str(err)) from None
    if name not in FIELDS:  # the harness's own options (epochs, batch_size, …) are not ICTRL's
        raise SystemExit(f"{name} is not an ICTRL option; known: {', '.join(FIELDS)}")
    return name, value


def parse(description: str) -> tuple[argparse.Namespace, dict, object, object]:
    """The command line every such benchmark takes (--scenario, --experiences, --validation, --seed,
    --option, --threads), read, and its scenario loaded (:func:`load`): (args, options, data, scenario)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="shapes:40", help="a scenario name (default: shapes:40)")
    p.add_argument("--experiences", type=int, default=None, help="experiences (default: the scenario's)")
    p.add_argument("--validation", type=float, default=0.1, help="held-out fraction evaluated on (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="class order and initialisation (default: 0)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="an ICTRL option of the run")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    return (args, *load(args))


def load(args: argparse.Namespace):
    """The run's threads and seed set, its --option values read, and ``args.scenario`` loaded with its
    validation split in place of the test set: (options, data, scenario); a bad name exits with one line."""
    torch.set_num_threads(args.threads)
    options = dict(parse_option(o) for o in args.option)
    torch.manual_seed(args.seed)
    try:
        data = load_data(args.scenario, args.experiences, validation=args.validation)
    except ScenarioError as err:
        raise SystemExit(str(err)) from None
    return options, data, make_scenario(data, args.seed)


def quick_ictrl(data, scenario, chosen: dict, plugins=()) -> tuple[ICTRL, dict]:
    """ICTRL with ctrl's quick preset for the data's family (the harness's settings) and the ``chosen``
    options on top, and the options it runs with."""
    settings = ctrl.preset("quick", data.family, "crate")
    options = {**{k: v for k, v in settings.items() if k in FIELDS}, **chosen}
    f, g = build_autoencoder("crate", scenario.image_shape, feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
                     num_classes=scenario.n_classes, train_mb_size=settings["batch_size"], plugins=list(plugins),
                     **options)
    return strategy, options
