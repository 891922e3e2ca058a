import json
import os

import numpy as np
import pytest
import torch

from ctrl_bench.harness import cli
from helpers import record_file
from baselines import MethodContext, get_method, memory_floats, method_names
from ctrl_bench import metrics
from ctrl_bench.harness.runner import make_evaluator, run_method
from scenarios import build_scenario, scenario_names
from scenarios.npz import MalformedNpzError, load_npz

REQUIRED_METHODS = {"naive", "joint", "lwf", "icarl", "ewc", "si", "gem", "agem", "replay", "gdumb", "der",
                    "generative_replay", "ctrl"}


def test_registries():
    assert REQUIRED_METHODS <= set(method_names())
    assert {"split_mnist", "split_fmnist", "split_cifar10", "split_cifar100", "npz:PATH"} <= set(scenario_names())
    with pytest.raises(ValueError, match="choose from: agem, ctrl"):
        get_method("sgd")


def test_metrics_against_a_hand_computed_matrix():
    A = [[0.9, 0.0, 0.0], [0.6, 0.8, 0.0], [0.5, 0.7, 0.9]]
    sizes = [10, 20, 30]
    # seen-so-far accuracies: 0.9, (6 + 16) / 30, (5 + 14 + 27) / 60
    assert metrics.seen_accuracy(A, sizes) == pytest.approx([0.9, 22 / 30, 46 / 60])
    assert metrics.last_accuracy(A, sizes) == pytest.approx(46 / 60)
    assert metrics.average_incremental_accuracy(A, sizes) == pytest.approx((0.9 + 22 / 30 + 46 / 60) / 3)
    assert metrics.forgetting(A) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert metrics.backward_transfer(A) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), "lacks the arrays y_test"),
    (lambda a: a.update(y_train=a["y_train"][:-3]), "has 192 images but y_train has 189 labels"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "must be uint8"),
    (lambda a: a.update(x_test=a["x_test"].reshape(len(a["x_test"]), -1)), r"shape \(N, H, W\)"),
    (lambda a: a.update(y_test=a["y_test"].astype(np.float64)), "1-D integer array"),
])
def test_malformed_npz_says_what_is_wrong(tiny_npz, tmp_path, change, message):
    arrays = dict(np.load(tiny_npz))
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(MalformedNpzError, match=message):
        load_npz(str(path))


def test_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("hello")
    with pytest.raises(MalformedNpzError, match=r"not a NumPy \.npz archive \(not a zip file\)"):
        load_npz(str(path))


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--epochs", "4",
                           "--batch-size", "16", "--mem-size", "40",
                           "--no-progress", "--out", str(out), *extra])


def test_end_to_end_two_methods_two_seeds_and_rerun_reuses_results(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "replay", "--seeds", "0", "1") == 0
    printed = capsys.readouterr().out
    assert "| naive |" in printed and "| replay (40 images) |" in printed
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 4
    for run in results["runs"]:
        assert {"method", "seed", "scenario", "accuracy_matrix", "last_accuracy", "average_incremental_accuracy",
                "forgetting", "bwt", "wall_seconds", "memory_budget", "device"} <= set(run)
        assert np.array(run["accuracy_matrix"]).shape == (2, 2)
    summary = results["summary"]["tiny-2"]
    assert set(summary) == {"naive", "replay (40 images)"} and summary["replay (40 images)"]["seeds"] == [0, 1]
    assert summary["replay (40 images)"]["last_accuracy"]["mean"] > summary["naive"]["last_accuracy"]["mean"]
    assert (out / "results.csv").read_text().count("\n") == 5
    assert "tiny-2 Last" in (out / "results.md").read_text() and "tiny-2 Memory (floats)" in (out / "results.md").read_text()
    assert all(run["memory_floats"] == {"naive": 0, "replay": 40 * 28 * 28}[run["method"]] for run in results["runs"])
    for method in ("naive", "replay"):
        for seed in (0, 1):
            tb_dir = out / "tensorboard" / record_file(out, method, seed).relative_to(out / "records").with_suffix("")
            assert any(f.startswith("events") for f in os.listdir(tb_dir))
    records = sorted((out / "records").rglob("*.json"))
    stamps = [r.stat().st_mtime_ns for r in records]
    assert bench(out, tiny_npz, "--methods", "naive", "replay", "--seeds", "0", "1") == 0
    assert [r.stat().st_mtime_ns for r in records] == stamps  # nothing ran again


class Kill(Exception):
    pass


class KillInExperience:
    """Raises inside training of experience ``at`` (after one iteration, or at its end when it trains
    nothing, as a frozen backbone), like a kill mid-experience."""

    def __init__(self, at: int):
        self.at, self.iterations = at, 0

    def after_training_iteration(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.at:
            self.iterations += 1
            if self.iterations == 1:
                raise Kill()

    def after_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.at and self.iterations == 0:
            raise Kill()

    def __getattr__(self, name):
        if name.startswith(("before_", "after_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


QUICK = {"naive", "ctrl", "der", "fetril"}  # the rest run in the full suite (-m slow)


@pytest.mark.parametrize("method", [m if m in QUICK else pytest.param(m, marks=pytest.mark.slow) for m in method_names()])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_npz, tmp_path, method):
    """Every method, killed in its second experience and resumed from the checkpoint of its first,
    ends with an uninterrupted run's numbers, bit for bit (a method whose state a checkpoint cannot
    hold starts again, which gives them too)."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    ictrl = method in ("ctrl", "ctrl_paper")
    options = {"n_directions": 6, "n_components": 6, "n_prototypes": 24, "lr": 1e-3} if ictrl else {}

    def context():
        return MethodContext(image_shape=scenario.image_shape, n_classes=4, n_experiences=2, device=torch.device("cpu"),
                             evaluator=make_evaluator(None), backbone="conv" if ictrl else "mlp",
                             size="tiny", feature_dim=32, epochs=2, batch_size=16, mem_size=20,
                             options=options)

    build, state = get_method(method).build, getattr(get_method(method), "STATE_ATTRIBUTES", ())
    clean = run_method(build, context(), scenario, str(tmp_path / "clean.pt"), seed=0, progress=False,
                       state_attributes=state)
    with pytest.raises(Kill):
        run_method(build, context(), scenario, str(tmp_path / "killed.pt"), seed=0, progress=False,
                   extra_plugins=[KillInExperience(at=1)], state_attributes=state)
    assert len(torch.load(tmp_path / "killed.pt", weights_only=True)["rows"]) == 1
    resumed = run_method(build, context(), scenario, str(tmp_path / "killed.pt"), seed=0, progress=False,
                         state_attributes=state)
    assert resumed["accuracy_matrix"] == clean["accuracy_matrix"]
    assert resumed["epochs_per_experience"] == clean["epochs_per_experience"]
    assert memory_floats(method, context(), resumed["strategy"]) == memory_floats(method, context(), clean["strategy"])


@pytest.mark.parametrize("args, message", [
    (["--scenario", "split_svhn"], "unknown scenario 'split_svhn'; choose one of: digits, mnist_5k, split_cifar10"),
    (["--methods", "ctrl", "sgd"], "unknown method 'sgd'"),
    (["--preset", "huge"], "unknown preset 'huge'; choose one of paper, quick"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--methods", "ctrl", "--backbone", "mlp"], "ctrl is built on a backbone of conv or crate, not mlp: use --backbone conv"),
    (["--methods", "ncm", "--option", "ncm.freez=true"], "ncm has no option 'freez'; its options: ncm.batch_size, ncm.epochs, ncm.first_epochs, ncm.freeze, ncm.lr, ncm.oracle"),
    (["--methods", "naive", "--option", "ncm.oracle=true"], "--option 'ncm.oracle=true': ncm is not among --methods"),
    (["--methods", "ncm", "--option", "oracle"], "expected METHOD.NAME=VALUE"),
])
def test_bad_names_exit_before_training(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args + ["--out", "/nonexistent/never-written"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_without_download_says_which_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", "split_mnist", "--methods", "naive", "--no-download",
                        "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and str(tmp_path / "data" / "MNIST" / "raw") in err


def test_malformed_npz_exits_with_a_message(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", f"npz:{path}", "--methods", "naive", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert "lacks the arrays y_train, x_test, y_test" in capsys.readouterr().err


def test_torchvision_data_hash_covers_every_file_of_the_data_set_folder(tmp_path):
    import hashlib

    from ctrl_bench.harness.provenance import data_hash
    from scenarios import SCENARIOS

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(name.encode())
    files = SCENARIOS["split_mnist"].files(str(tmp_path))
    assert [os.path.basename(f) for f in files] == ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]
    listing = "".join(f"{hashlib.sha256(open(f, 'rb').read()).hexdigest()}  {os.path.basename(f)}\n" for f in files)
    assert data_hash(files) == hashlib.sha256(listing.encode()).hexdigest()  # `sha256sum * | sha256sum`
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"changed")
    assert data_hash(files) != hashlib.sha256(listing.encode()).hexdigest()
