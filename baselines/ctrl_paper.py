"""i-CTRL as the paper plays it (Tong et al., ICLR 2023): ctrl with every departure from the paper
turned off, on the same ``--backbone`` and ``--size`` and at the same budget, so that a table shows
what the departures buy. The departures and the paper's values are read from ``ICTRLConfig``'s
fields (``ctrl_bench.ictrl.config``: each field marked as a departure states the paper's value), so
that the fact lives in one place; everything else is ctrl's (its builder, presets, memory count,
oracle flag and record fields), and its other options stay settable (``--option ctrl_paper.NAME=VALUE``)."""

import dataclasses

from ctrl_bench.ictrl.config import FIELDS, RETENTION

from . import ctrl
from .ctrl import BACKBONES, DECODES_MEMORY, DISTRIBUTED  # noqa: F401
from .ctrl import memory_budget, memory_floats, oracle, record_fields  # noqa: F401

# option → the paper's value, for every departure
PAPER_VALUES = {name: FIELDS[name].metadata["paper"] for name in RETENTION}
OPTIONS = {name: text for name, text in ctrl.OPTIONS.items() if name not in RETENTION}
SEARCH_SPACE = {name: space for name, space in ctrl.SEARCH_SPACE.items() if name not in RETENTION}


def paper_options(options: dict) -> dict:
    """``options`` with every departure at the paper's value (ctrl's presets turn some on)."""
    return {**options, **PAPER_VALUES}


def preset(name: str, family: str, backbone: str) -> dict:
    """ctrl's settings in preset ``name`` for ``family`` (batch size, prototypes, the reference game),
    its departures at the paper's values."""
    return paper_options(ctrl.preset(name, family, backbone))


def resolve_options(options: dict) -> dict:
    """Every game option of a run, as ctrl resolves them, the departures at the paper's values."""
    return ctrl.resolve_options(paper_options(options))


def check_options(options: dict) -> None:
    """A departure set to anything but the paper's value is refused (that run is ctrl with options,
    not the paper's method); the rest as ctrl checks them."""
    for name in sorted(RETENTION.keys() & options.keys()):
        if name not in PAPER_VALUES or options[name] != PAPER_VALUES[name]:
            raise ValueError(f"{name} is a departure from the paper, which ctrl_paper keeps off; run ctrl with "
                             f"--option ctrl.{name}={options[name]} instead")
    ctrl.check_options(paper_options(options))


def build(ctx):
    """ctrl's builder with the departures at the paper's values."""
    return ctrl.build(dataclasses.replace(ctx, options=paper_options(ctx.options)))
