"""What the benchmarks that train i-CTRL on a scenario's validation split share: their command-line
arguments and the scenario they load (never its test set)."""

import argparse

import torch

from lone_class_drift import parse_option  # NAME=VALUE as the harness reads --option ctrl.NAME=VALUE
from scenarios.labels import ScenarioError
from scenarios.registry import load_data, make_scenario


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--validation, --seed, --option and --threads."""
    p.add_argument("--validation", type=float, default=0.1, help="held-out fraction evaluated on (default: 0.1)")
    p.add_argument("--seed", type=int, default=0, help="class order and initialisation (default: 0)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="an ICTRL option of the run")
    p.add_argument("--threads", type=int, default=1)


def load(args: argparse.Namespace, experiences: int | None):
    """The run's threads and seed set, its --option values read, and ``args.scenario`` loaded with its
    validation split in place of the test set: (options, data, scenario); a bad name exits with one line."""
    torch.set_num_threads(args.threads)
    options = dict(parse_option(o) for o in args.option)
    torch.manual_seed(args.seed)
    try:
        data = load_data(args.scenario, experiences, validation=args.validation)
    except ScenarioError as err:
        raise SystemExit(str(err)) from None
    return options, data, make_scenario(data, args.seed)
