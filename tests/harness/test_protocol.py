"""The honest protocol: one training budget for every method (and the rows that depart from it
labelled), rehearsal methods at memory sizes given in images or floats, a validation split that
never reads the test images, and Task-IL accuracy beside Class-IL."""

import json
import tempfile

import numpy as np
import pytest
import torch

from baselines import MethodContext, get_method, method_names
from ctrl_bench.harness import cli
from ctrl_bench.harness.runner import make_evaluator, run_method
from ctrl_bench.harness.task_il import task_aware_prediction
from helpers import record_file, write_npz
from scenarios import load_data, make_scenario


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--batch-size", "32",
                     "--no-progress", "--out", str(out), *extra])


def test_every_method_gets_the_one_budget_and_a_departure_is_labelled(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "lwf", "--epochs", "2", "--first-epochs", "3",
                 "--option", "lwf.epochs=1") == 0
    naive, lwf = (json.loads(record_file(out, m).read_text()) for m in ("naive", "lwf"))
    assert naive["epochs_per_experience"] == [3, 2] and naive["budget"]["override"] is None
    assert naive["train_steps"] == 3 * 3 + 2 * 3  # 96 images per experience, batch 32
    # the loops' seconds are part of each experience's training seconds, which also hold its set-up
    loops, trained = naive["loop_seconds_per_experience"], naive["train_seconds_per_experience"]
    assert len(loops) == 2 and all(0 < loop < t for loop, t in zip(loops, trained))
    assert lwf["epochs_per_experience"] == [3, 1] and lwf["budget"]["override"] == "1 epoch"
    table = (out / "results.md").read_text()
    assert "| lwf [1 epoch] |" in table and "| naive |" in table
    assert "3 + 2 × 1 epochs, batch 32, 15 steps" in table  # the budget column


def test_ctrl_trains_the_same_epochs_as_every_other_method(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "ctrl", "naive", "--backbone", "conv", "--epochs", "1",
                 "--first-epochs", "2", "--option", "ctrl.batch_size=64") == 0
    ctrl, naive = (json.loads(record_file(out, m).read_text()) for m in ("ctrl", "naive"))
    assert ctrl["epochs_per_experience"] == naive["epochs_per_experience"] == [2, 1]
    assert ctrl["budget"]["batch_size"] == 64 and naive["budget"]["batch_size"] == 32 and ctrl["budget"]["override"] is None


def test_rehearsal_methods_run_at_every_memory_size_in_images_or_floats(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "replay", "naive", "--epochs", "1", "--mem-size", "8", "20",
                 "--memory-floats", str(784 * 12 + 5)) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["method"], r["memory_images"], r["memory_floats"]) for r in runs) == [
        ("naive", None, 0), ("replay", 8, 8 * 784), ("replay", 12, 12 * 784), ("replay", 20, 20 * 784)]
    labels = [line.split(" | ")[0] for line in (out / "results.md").read_text().splitlines()
              if line.startswith("| replay") or line.startswith("| naive")][:4]
    assert labels == ["| replay (8 images)", "| replay (12 images)", "| replay (20 images)", "| naive"]
    with pytest.raises(SystemExit) as exit_info:
        bench(tmp_path / "other", tiny_npz, "--methods", "replay", "--memory-floats", "700")
    assert exit_info.value.code == 1
    assert "--memory-floats 700 holds no image of npz:" in capsys.readouterr().err


def test_the_memory_figure_draws_a_rehearsal_method_as_a_curve(tmp_path):
    from ctrl_bench.harness.plots import memory_figure
    from ctrl_bench.harness.results import summarise

    def run(method, memory, floats, last):
        return {"scenario": "s", "method": method, "seed": 0, "memory_images": memory, "memory_floats": floats,
                "last_accuracy": last, "average_incremental_accuracy": last, "forgetting": 0.0, "bwt": 0.0,
                "wall_seconds": 1.0, "source": "ran", "reuse_key": {"m": method, "k": memory}}

    runs = [run("replay", 10, 7840, 0.5), run("replay", 100, 78400, 0.8), run("ctrl", None, 21920, 0.9)]
    rows = {label: (entry, []) for label, entry in summarise(runs)["s"].items()}
    ax = memory_figure("s", rows).axes[0]
    (curve,) = [line for line in ax.get_lines() if len(line.get_xdata()) == 2]
    assert list(curve.get_xdata()) == [7840, 78400] and list(curve.get_ydata()) == [0.5, 0.8]


def scrambled(tiny_npz, tmp_path):
    arrays = dict(np.load(tiny_npz))
    arrays["y_test"] = np.random.default_rng(1).permutation(arrays["y_test"])
    arrays["x_test"] = np.zeros_like(arrays["x_test"])
    path = tmp_path / "scrambled" / "tiny.npz"
    path.parent.mkdir()
    np.savez(path, **arrays)
    return str(path)


def test_a_validation_run_never_reads_the_test_images(tiny_npz, tmp_path):
    numbers = []
    for data, out in ((tiny_npz, tmp_path / "a"), (scrambled(tiny_npz, tmp_path), tmp_path / "b")):
        assert bench(out, data, "--methods", "naive", "replay", "--epochs", "2", "--validation", "0.25") == 0
        runs = json.loads((out / "results.json").read_text())["runs"]
        numbers.append({(r["method"], r["seed"]): (r["accuracy_matrix"], r["task_il_accuracy_matrix"]) for r in runs})
        assert {r["evaluated_on"] for r in runs} == {"validation"} and {r["scenario"] for r in runs} == {"tiny-2-val25"}
        assert "tiny-2-val25 (validation) Last" in (out / "results.md").read_text()
    assert numbers[0] == numbers[1]


def test_the_validation_split_is_stratified_seeded_and_disjoint(tiny_npz):
    data = load_data(f"npz:{tiny_npz}", 2, validation=0.25)
    x_train, y_train, x_val, y_val = data.arrays
    assert np.bincount(y_val).tolist() == [12] * 4 and np.bincount(y_train).tolist() == [36] * 4
    again = load_data(f"npz:{tiny_npz}", 2, validation=0.25)
    assert np.array_equal(again.arrays[2], x_val)  # the same images every time
    full = np.load(tiny_npz)["x_train"]
    assert len({img.tobytes() for img in np.concatenate([x_train, x_val])}) == len({img.tobytes() for img in full})


@pytest.mark.parametrize("method", [m if m in ("naive", "ctrl", "icarl") else pytest.param(m, marks=pytest.mark.slow)
                                    for m in method_names()])
def test_every_method_runs_on_a_validation_split_and_reports_task_il(tiny_npz, method):
    scenario = make_scenario(load_data(f"npz:{tiny_npz}", 2, validation=0.25), seed=0)
    ictrl = method in ("ctrl", "ctrl_paper")
    options = {"n_directions": 6, "n_components": 6, "n_prototypes": 24} if ictrl else {}
    ctx = MethodContext(image_shape=scenario.image_shape, n_classes=4, n_experiences=2, device=torch.device("cpu"),
                        evaluator=make_evaluator(None), backbone="conv" if ictrl else "mlp", size="tiny",
                        feature_dim=32, epochs=1, batch_size=16, mem_size=20, options=options)
    with tempfile.TemporaryDirectory() as folder:
        result = run_method(get_method(method).build, ctx, scenario, f"{folder}/c.pt", seed=0, progress=False)
    assert scenario.test_sizes == [24, 24]
    class_il, task_il = np.array(result["accuracy_matrix"]), np.array(result["task_il_accuracy_matrix"])
    assert task_il.shape == (2, 2) and task_il[0, 1] == 0.0  # an unseen experience is not scored
    assert (task_il[np.tril_indices(2)] >= class_il[np.tril_indices(2)] - 1e-9).all()  # knowing the task can only help
    assert result["task_il_last_accuracy"] >= result["last_accuracy"] - 1e-9


def test_task_aware_prediction_is_the_arg_max_inside_the_tasks_classes():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.1, 0.3, 0.8]])
    assert task_aware_prediction(scores, [2, 3]).tolist() == [2, 3]
    assert task_aware_prediction(scores, {0, 1}).tolist() == [0, 0]


def test_a_warm_start_puts_n_classes_first_and_splits_the_rest(tmp_path):
    data = write_npz(tmp_path / "tiny.npz", n_classes=6, train_per_class=16, test_per_class=8)
    out = tmp_path / "runs"
    assert cli.main(["--scenario", f"npz:{data}", "--n-experiences", "3", "--first-experience-classes", "2",
                     "--methods", "naive", "--backbone", "mlp", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    record = json.loads(record_file(out, "naive", scenario="tiny-3-first2").read_text())
    assert [len(c) for c in record["experience_classes"]] == [2, 2, 2]
    assert record["settings"]["first_experience_classes"] == 2
    assert cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--first-experience-classes", "4",
                     "--methods", "naive", "--backbone", "mlp", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    record = json.loads(record_file(out, "naive", scenario="tiny-2-first4").read_text())
    assert [len(c) for c in record["experience_classes"]] == [4, 2]


def test_a_warm_start_that_does_not_split_evenly_says_what_fits(tmp_path, capsys):
    data = write_npz(tmp_path / "tiny.npz", n_classes=6, train_per_class=8, test_per_class=4)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", f"npz:{data}", "--n-experiences", "3", "--first-experience-classes", "3",
                  "--methods", "naive", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert "a first experience of 3 of its 6 classes leaves 3 for 2 more experiences" in capsys.readouterr().err
