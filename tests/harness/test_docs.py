"""Every ```python block of README.md and docs/*.md runs, on small generated data.

Three kinds of block: a method module (its first line ``# baselines/NAME.py``) is loaded as that
module, checked against the method contract, built and trained on a generated scenario; a block with
a relative import and no such line adds to the method module before it in the same file (its hooks
are called after training); any other block runs as a script in a fresh folder, with the downloads
and long runs it would start swapped for small generated ones: ``SplitMNIST`` gives generated bars,
``ICTRL`` trains one short epoch, and the harness's ``run`` runs a 2-experience generated scenario at
1 epoch on the MLP backbone.
"""

import dataclasses
import re
import types
from pathlib import Path

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

import baselines
from helpers import write_npz
from scenarios import build_scenario

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MODULE = re.compile(r"^# baselines/(\w+)\.py\n")
SMALL_ICTRL = dict(train_epochs=1, train_mb_size=32, eval_mb_size=256, first_steps=0, anchors_per_class=4,
                   n_prototypes=16, n_directions=4, n_components=4, images_per_class=2)


def blocks() -> list[tuple[str, str]]:
    """(where, code) of every python block: where is "file:line"."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            found.append((f"{path.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}", match.group(1)))
    return found


def snippets() -> list[tuple[str, str, list[str]]]:
    """(where, kind, codes): a method module with the blocks that add to it, or a script."""
    found = []
    for where, code in blocks():
        if MODULE.match(code):
            found.append((where, "method", [code]))
        elif re.search(r"^from \.", code, re.M):
            previous = [s for s in found if s[1] == "method" and s[0].split(":")[0] == where.split(":")[0]]
            assert previous, f"{where}: a block with a relative import needs a # baselines/NAME.py block before it"
            previous[-1][2].append(code)
        else:
            found.append((where, "script", [code]))
    return found


def test_the_docs_have_the_blocks_this_file_runs():
    kinds = [kind for _, kind, _ in snippets()]
    assert kinds.count("method") >= 2 and kinds.count("script") >= 2


@pytest.fixture
def tiny_scenario(tmp_path):
    return build_scenario(f"npz:{write_npz(tmp_path / 'tiny.npz')}", n_experiences=2, seed=0)


METHODS = [(where, codes) for where, kind, codes in snippets() if kind == "method"]
SCRIPTS = [(where, codes) for where, kind, codes in snippets() if kind == "script"]


@pytest.mark.parametrize("where, codes", METHODS, ids=[where for where, _ in METHODS])
def test_a_method_module_in_the_docs_keeps_the_contract_and_trains(where, codes, tiny_scenario):
    name = MODULE.match(codes[0]).group(1)
    module = types.ModuleType(f"baselines.{name}")
    module.__package__, module.__file__ = "baselines", str(ROOT / "baselines" / f"{name}.py")
    for code in codes:
        exec(compile(code, where, "exec"), module.__dict__)
    baselines.check_contract(name, module)
    ctx = baselines.MethodContext(image_shape=tiny_scenario.image_shape, n_classes=tiny_scenario.n_classes,
                                  n_experiences=2, device=torch.device("cpu"), backbone="mlp", epochs=1,
                                  batch_size=32, mem_size=40,
                                  evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    strategy = module.build(ctx)
    for experience in tiny_scenario.benchmark.train_stream:
        strategy.train(experience)
    strategy.eval(tiny_scenario.benchmark.test_stream)
    if hasattr(module, "memory_budget"):
        assert module.memory_budget(ctx, strategy) == "40 images"
    if hasattr(module, "memory_floats"):
        assert module.memory_floats(ctx, strategy) == 40 * 28 * 28


@pytest.mark.parametrize("where, codes", SCRIPTS, ids=[where for where, _ in SCRIPTS])
def test_a_script_in_the_docs_runs_on_generated_data(where, codes, tmp_path, monkeypatch):
    import avalanche.benchmarks.classic

    import ctrl_bench
    import ctrl_bench.harness
    from ctrl_bench.harness.bench import run
    from ctrl_bench.ictrl.strategy import ICTRL

    data = write_npz(tmp_path / "tiny.npz", n_classes=10, train_per_class=16, test_per_class=8)

    def split_mnist(n_experiences=5, seed=0, **_transforms):  # the bars are already in [-1, 1]
        return build_scenario(f"npz:{data}", n_experiences=n_experiences, seed=seed).benchmark

    def small_run(config):
        small = dataclasses.replace(config, scenarios=(f"npz:{data}",), n_experiences=2, threads=1, progress=False,
                                    overrides={**config.overrides, "epochs": 1, "backbone": "mlp", "batch_size": 32},
                                    out=str(tmp_path / config.out))
        return run(small)

    monkeypatch.setattr(avalanche.benchmarks.classic, "SplitMNIST", split_mnist)
    monkeypatch.setattr(ctrl_bench, "ICTRL", lambda **kw: ICTRL(**{**SMALL_ICTRL, **kw}), raising=False)
    monkeypatch.setattr(ctrl_bench.harness, "run", small_run, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    exec(compile(codes[0], where, "exec"), namespace)
