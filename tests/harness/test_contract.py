"""The method contract (baselines/__init__.py): every module is checked when the registry loads it,
so that a missing build or a misspelt hook fails loudly instead of counting 0 floats."""

import os
import subprocess
import sys
import types

import pytest

import baselines
from baselines import ATTRIBUTES, HOOKS, MethodContractError, check_contract
from helpers import copy_of_the_code


def module(**attributes) -> types.ModuleType:
    made = types.ModuleType("baselines.example")
    made.__file__ = "baselines/example.py"
    made.__dict__.update(attributes)
    return made


def build(ctx):
    return None


def test_every_shipped_method_keeps_the_contract():
    for name, method in baselines.METHODS.items():
        check_contract(name, method)  # raises for a breach
    assert set(baselines.METHODS) >= {"ctrl", "naive", "replay", "der", "icarl"}


@pytest.mark.parametrize("attributes, words", [
    ({}, ["baselines.example", "build"]),
    ({"build": build, "memory_float": lambda ctx, strategy: 1}, ["baselines.example", "memory_float", "memory_floats"]),
    ({"build": build, "Rehearsal": True}, ["baselines.example", "Rehearsal", "REHEARSAL"]),
    ({"build": build, "REHEARSAL": "yes"}, ["baselines.example", "REHEARSAL", "bool"]),
    ({"build": build, "oracle": "always"}, ["baselines.example", "oracle", "function"]),
    ({"build": build, "OPTIONS": {"alpha": "a weight"}, "OPTION_RANGES": {"beta": (float, 0)}},
     ["baselines.example", "OPTION_RANGES", "beta"]),
    ({"build": build, "CLI_FLAGS": {"gamma": {"help": "γ"}}}, ["baselines.example", "CLI_FLAGS", "gamma"]),
])
def test_a_breach_names_the_module_and_the_hook(attributes, words):
    with pytest.raises(MethodContractError) as err:
        check_contract("example", module(**attributes))
    assert all(word in str(err.value) for word in words), str(err.value)


def test_helpers_and_the_method_s_own_names_pass():
    check_contract("example", module(build=build, REHEARSAL=True, OPTIONS={"alpha": "a weight"},
                                     OPTION_RANGES={"alpha": (float, 0)}, HEAD_EPOCHS=50, pseudo_features=build,
                                     CLI_FLAGS={"alpha": {"help": "α"}, "epochs": {"help": "the budget"}}))


def test_the_contract_lists_each_hook_once_with_its_text():
    assert set(HOOKS).isdisjoint(ATTRIBUTES) and "build" in HOOKS
    assert all(isinstance(text, str) and text for text in HOOKS.values())
    assert all(len(entry) == 3 and isinstance(entry[2], str) for entry in ATTRIBUTES.values())


def test_the_registry_refuses_a_module_with_a_misspelt_hook_when_it_loads(tmp_path):
    code = copy_of_the_code(tmp_path / "code")
    (code / "baselines" / "typo.py").write_text(
        "from ._backbones import images_budget as memory_budgets  # noqa: F401\n\n\ndef build(ctx):\n    return None\n")
    loaded = subprocess.run([sys.executable, "-c", "import baselines"], cwd=code, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(code)})
    assert loaded.returncode != 0
    last = loaded.stderr.strip().splitlines()[-1]
    assert "MethodContractError" in last and "baselines.typo" in last and "memory_budgets" in last
    assert "memory_budget?" in last
