"""Class-incremental scenarios by name.

``build_scenario("split_mnist", n_experiences=5, seed=0)`` → :class:`Scenario` holding an Avalanche
``NCScenario`` (no task labels at test time). Names: the registered torchvision splits
(``split_mnist``, ``split_fmnist``, ``split_cifar10``, ``split_cifar100``) and ``npz:PATH``.
"""

from .labels import LabelError
from .registry import (SCENARIOS, DataMissingError, Scenario, ScenarioData, build_scenario, load_data, make_scenario,
                       scenario_names)
from . import torchvision_splits  # noqa: F401  (registers the torchvision scenarios)

__all__ = ["SCENARIOS", "DataMissingError", "LabelError", "Scenario", "ScenarioData", "build_scenario", "load_data",
           "make_scenario", "scenario_names"]
