"""Class-incremental scenarios by name.

``build_scenario("split_mnist", n_experiences=5, seed=0)`` → :class:`Scenario` holding an Avalanche
``NCScenario`` (no task labels at test time). Names: ``mnist_5k`` (a subset that ships with the package), the
torchvision splits (``split_mnist``, ``split_fmnist``, ``split_cifar10``, ``split_cifar100``),
``split_tinyimagenet`` (through Avalanche), ``digits`` (scikit-learn's 8 × 8 digits), the generated
``synthetic:K``, ``textures:K``, ``shapes:K`` and ``blobs:K`` (:mod:`scenarios.synthetic`) and ``npz:PATH``.
"""

from .labels import LabelError, ScenarioError
from .registry import (SCENARIOS, DataMissingError, Scenario, ScenarioData, build_scenario, load_data, make_scenario,
                       scenario_label, scenario_names)
from . import digits, packaged, tinyimagenet, torchvision_splits  # noqa: F401  (register the named scenarios)

__all__ = ["SCENARIOS", "DataMissingError", "LabelError", "Scenario", "ScenarioData", "ScenarioError", "build_scenario", "load_data",
           "make_scenario", "scenario_label", "scenario_names"]
