"""The benchmark harness: a typed run configuration (:mod:`.config`), presets (:mod:`.presets`),
the checks before a command (:mod:`.bench`), the one loop that runs its cells one after another,
over torchrun's processes or on Ray (:mod:`.cells`, :mod:`.grid`), each cell resumable
(:mod:`.runner`, :mod:`.checkpoint`), records and their reuse (:mod:`.records`), the
results tables and figures (:mod:`.results`, :mod:`.plots`) and the command line (:mod:`.cli`)::

    from ctrl_bench.harness import RunConfig, run
    outcome = run(RunConfig(methods=("naive", "replay"), seeds=(0, 1), out="runs"))
    print(outcome.summary)
"""

from .config import ConfigError, GridConfig, RunConfig


def __getattr__(name):
    # run and DataError pull in torch and the scenarios: load them when asked for.
    if name in ("run", "DataError", "RunOutcome"):
        from . import bench
        return getattr(bench, name)
    raise AttributeError(name)


__all__ = ["ConfigError", "DataError", "GridConfig", "RunConfig", "RunOutcome", "run"]
