"""The exemplar-free peers of i-CTRL (fecam, ncm, fetril, pass) on generated data: they learn, keep
no images, and their memory_floats counts what they keep; and the memory counts of the others."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from baselines import MethodContext, get_method, memory_floats, oracle
from baselines._backbones import model_floats
from ctrl_bench.harness.runner import make_evaluator, run_method
from scenarios import build_scenario

D = 128  # feature dimension (the presets' d)
CHW = 28 * 28
# Not state a method keeps of the past: the experience being trained or evaluated (the current
# data), the evaluator and the optimiser's per-parameter moments.
NOT_MEMORY = {"experience", "current_eval_stream", "_eval_streams", "evaluator", "optimizer"}


def train(method, tiny_npz, tmp_path, epochs=4, **options):
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    ctx = MethodContext(image_shape=scenario.image_shape, n_classes=4, n_experiences=2, device=torch.device("cpu"),
                        evaluator=make_evaluator(None), backbone="mlp", feature_dim=D, epochs=epochs, batch_size=16,
                        mem_size=40, options=options)
    result = run_method(get_method(method).build, ctx, scenario, str(tmp_path / f"{method}.pt"), seed=0, progress=False)
    return ctx, result


def stored_images(strategy, image_shape) -> list[str]:
    """Where the strategy's state holds images: the attribute path of every tensor whose last three
    dimensions are an image's, and of every data set."""
    found, seen = [], set()

    def walk(obj, path, depth):
        if id(obj) in seen or depth > 15:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.dim() >= 3 and tuple(obj.shape[-3:]) == tuple(image_shape):
                found.append(path)
            return
        if isinstance(obj, Dataset):
            found.append(path)
            return
        if isinstance(obj, dict):
            items = obj.items()
        elif isinstance(obj, (list, tuple, set)):
            items = enumerate(obj)
        elif hasattr(obj, "__dict__") and (isinstance(obj, nn.Module) or type(obj).__module__.split(".")[0] in (
                "baselines", "avalanche", "torch")):
            items = vars(obj).items()
        else:
            return
        for key, value in items:
            if key not in NOT_MEMORY:
                walk(value, f"{path}.{key}", depth + 1)

    walk(strategy, "strategy", 0)
    return found


def expected_floats(method, strategy, n_classes=4):
    return {"fecam": n_classes * (D + D * D), "ncm": n_classes * D, "fetril": n_classes * D,
            "pass": model_floats(getattr(strategy, "old_backbone", None)) + n_classes * (D + 1)}[method]


@pytest.mark.parametrize("method", ["fecam", "ncm", "fetril", "pass"])
def test_exemplar_free_methods_learn_and_keep_only_statistics(method, tiny_npz, tmp_path):
    ctx, result = train(method, tiny_npz, tmp_path)
    strategy = result["strategy"]
    # 4 classes: chance is 0.25; after two experiences each method is right on far more than that
    # (new classes alone give 0.5; seed 0 gives fecam 0.98, fetril 0.98, pass 0.69, ncm 0.50, the
    # same with 1, 2 and 4 threads), and the first experience is learnt (1.00 for all four)
    assert result["last_accuracy"] > 0.4
    assert result["accuracy_matrix"][0][0] > 0.9
    assert stored_images(strategy, ctx.image_shape) == []
    assert memory_floats(method, ctx, strategy) == expected_floats(method, strategy)
    assert oracle(method, ctx, strategy) is None


def test_the_state_walker_finds_stored_images(tiny_npz, tmp_path):
    """Its control: the buffer of Replay, and the data sets an oracle keeps."""
    ctx, result = train("replay", tiny_npz, tmp_path)
    assert any("storage_policy" in path for path in stored_images(result["strategy"], ctx.image_shape))
    ctx, result = train("ncm", tiny_npz, tmp_path, oracle=True)
    assert any("all_datasets" in path for path in stored_images(result["strategy"], ctx.image_shape))
    assert "NCMOracle" in oracle("ncm", ctx, result["strategy"])


def test_frozen_backbones_do_not_move_after_the_first_experience(tiny_npz, tmp_path):
    snapshots = {}

    class Snapshot:  # the backbone's state at the end of each experience
        def __getattr__(self, name):
            if name == "after_training_exp":
                return lambda strategy, **kw: snapshots.setdefault(len(snapshots), {
                    k: v.clone() for k, v in strategy.model.state_dict().items()
                    if not k.startswith(("1.", "train_classifier", "eval_classifier"))})
            if name.startswith(("before_", "after_")):
                return lambda *args, **kwargs: None
            raise AttributeError(name)

    for method, options in (("fecam", {}), ("fetril", {}), ("ncm", {"freeze": True})):
        snapshots.clear()
        scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
        ctx = MethodContext(image_shape=scenario.image_shape, n_classes=4, n_experiences=2, device=torch.device("cpu"),
                            evaluator=make_evaluator(None), backbone="conv", size="tiny", feature_dim=D, epochs=2,
                            batch_size=16, options=options)
        run_method(get_method(method).build, ctx, scenario, str(tmp_path / f"{method}.pt"), seed=0, progress=False,
                   extra_plugins=[Snapshot()])
        first, second = snapshots[0], snapshots[1]
        backbone = list(first)
        assert backbone and all(torch.equal(first[k], second[k]) for k in backbone), method  # BatchNorm included


@pytest.mark.parametrize("method, expected", [
    ("naive", lambda s, m: 0),
    ("replay", lambda s, m: 40 * CHW),  # rehearsal: images × C·H·W
    ("der", lambda s, m: 40 * (CHW + 4)),  # and a logit per class with each
    ("gem", lambda s, m: 2 * 20 * CHW),  # 40 // 2 per experience
    ("agem", lambda s, m: 2 * 20 * CHW),
    ("gdumb", lambda s, m: 40 * CHW + model_floats(m)),  # and the initial model
    ("joint", lambda s, m: 4 * 48 * CHW),  # all training images
    ("lwf", lambda s, m: model_floats(m)),  # the previous model
    ("ewc", lambda s, m: 2 * 2 * sum(p.numel() for p in m.parameters())),  # anchors + importances, per experience
    ("si", lambda s, m: 3 * sum(p.numel() for p in m.parameters())),  # anchors, importances, path integrals
    ("generative_replay", lambda s, m: 2 * model_floats(s.generator_strategy.model) + model_floats(m)),
])
def test_memory_floats_counts_what_each_method_keeps(method, expected, tiny_npz, tmp_path):
    ctx, result = train(method, tiny_npz, tmp_path, epochs=1)  # what is kept does not depend on training length
    strategy = result["strategy"]
    assert memory_floats(method, ctx, strategy) == expected(strategy, strategy.model)
    assert math.prod(ctx.image_shape) == CHW
