"""Continual evaluation (--eval-every), the stability gap and min-ACC, per-class accuracy and recency bias
in every record, their figures and tables, and W&B logging (--log wandb, offline)."""

import csv
import io
import json
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ctrl_bench import metrics
from ctrl_bench.harness import cli, runner
from ctrl_bench.harness.flops import TrainingFlops
from helpers import record_file


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--batch-size", "32",
                     "--mem-size", "40", "--no-progress", "--threads", "1", "--out", str(out), *extra])


def record(out, method="naive"):
    return json.loads(record_file(out, method).read_text())


# ---------------------------------------------------------------- the formulas, on known values
def test_learning_accuracy_is_the_mean_of_the_diagonal():
    A = [[0.9, 0.0, 0.0], [0.5, 0.8, 0.0], [0.2, 0.3, 0.7]]
    assert metrics.learning_accuracy(A) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert metrics.learning_accuracy([[0.6]]) == pytest.approx(0.6)


def test_pooled_accuracy_weighs_each_experience_by_its_images():
    assert metrics.pooled_accuracy([1.0, 0.0], [30, 10]) == pytest.approx(0.75)
    assert metrics.pooled_accuracy([0.5], [30, 10]) == pytest.approx(0.5)  # the first experiences only


def test_min_accuracy_is_de_lange_s_min_acc():
    # three experiences; during[k]: the evaluations while k trained, on experiences 0..k-1
    during = [[], [[0.9], [0.4], [0.7]], [[0.6, 0.95], [0.5, 0.3], [0.8, 0.9]]]
    # experience 0: min over experiences 1 and 2 of its accuracy = 0.4; experience 1: min over 2 = 0.3
    assert metrics.min_accuracy(during) == pytest.approx((0.4 + 0.3) / 2)
    assert metrics.min_accuracy([[]]) is None  # one experience: nothing was ever old


def test_stability_gap_is_the_drop_below_the_accuracy_just_before_each_experience():
    before = [None, 0.9, 0.8]
    during = [[], [0.5, 0.7, 0.85], [0.8, 0.6, 0.75]]
    assert metrics.stability_gap(before, during) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.6)) / 2)
    assert metrics.stability_gap([None, 0.7], [[], [0.9, 0.8]]) == pytest.approx(-0.1)  # it can rise instead
    assert metrics.stability_gap([None], [[]]) is None


def test_per_class_accuracy_and_recency_bias_from_a_confusion_matrix():
    C = [[8, 0, 2, 0],   # row: true class, column: predicted class
         [1, 5, 4, 0],
         [0, 0, 10, 0],
         [0, 0, 0, 0]]   # a class without test images
    assert metrics.per_class_accuracy(C) == [pytest.approx(0.8), pytest.approx(0.5), pytest.approx(1.0), None]
    # the last experience's classes {2, 3}: 16 of 30 predictions go to them, 10 of 30 images are theirs
    assert metrics.recency_bias(C, [2, 3]) == pytest.approx(16 / 30)
    assert metrics.class_share(C, [2, 3]) == pytest.approx(10 / 30)


def test_what_runs_while_the_flops_counter_is_paused_is_not_counted():
    class Strategy:
        device, train_epochs, dataloader = "cpu", 1, range(4)

    small, large = 2 * 8**3, 2 * 32**3
    counted = []
    for pause in (False, True):
        flops = TrainingFlops()
        strategy = Strategy()
        flops.before_training(strategy)
        flops.before_training_epoch(strategy)
        for _ in range(4):
            flops.front.before_training_iteration(strategy)
            torch.ones(8, 8) @ torch.ones(8, 8)
            if pause:  # an evaluation in the middle of a counted step and of the upkeep
                with flops.paused():
                    torch.ones(32, 32) @ torch.ones(32, 32)
            flops.after_training_iteration(strategy)
        with flops.paused():
            torch.ones(32, 32) @ torch.ones(32, 32)
        torch.ones(8, 8) @ torch.ones(8, 8)  # upkeep after the last step
        flops.after_training(strategy)
        counted.append((flops.step_flops, flops.upkeep_flops))
    assert counted[0] == counted[1] == (4 * small, small)
    assert large > small  # had it been counted, it would show


# ---------------------------------------------------------------- a run on generated data
def test_naive_shows_a_larger_stability_gap_than_replay_and_predicts_the_last_classes(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "replay", "--epochs", "10", "--eval-every", "2",
                 "--eval-images", "12") == 0
    naive, replay = record(out, "naive"), record(out, "replay")
    for r in (naive, replay):
        assert r["settings"]["continual_eval"] == {"every_steps": 2, "images_per_experience": 12}
        trace = r["continual_eval"]
        assert trace["images_per_experience"] == [12, 12] and trace["subset_seed"] == 0
        assert trace["steps_per_experience"] == r["steps_per_experience"] == [30, 30]
        assert trace["steps"] == [[], list(range(2, 31, 2))] and len(trace["accuracy"][1]) == 15
        assert r["continual_eval_flops"] > 0 and r["continual_evaluations"] == 2 + 15
        assert len(r["per_class_accuracy"]) == 4 and r["last_classes_test_share"] == pytest.approx(0.5)
        assert r["learning_accuracy"] == pytest.approx(metrics.learning_accuracy(r["accuracy_matrix"]))
        # the confusion matrix is the final evaluation's: its diagonal gives Last
        C = r["confusion_matrix"]
        assert sum(C[c][c] for c in range(4)) / sum(map(sum, C)) == pytest.approx(r["last_accuracy"])
    # naive forgets by construction: its old classes fall to 0 and every prediction goes to the new ones
    assert naive["stability_gap"] > replay["stability_gap"] + 0.2
    assert naive["min_accuracy"] < replay["min_accuracy"]
    assert naive["recency_bias"] > 0.9 and replay["recency_bias"] < naive["recency_bias"]
    events = EventAccumulator(str(out / "tensorboard" / "tiny-2" / "naive" / "seed0"))
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars("continual/old_classes_accuracy")]
    assert [step for step, _ in points] == list(range(32, 61, 2))  # the run's training iteration, each once
    assert [value for _, value in points] == pytest.approx(naive["continual_eval"]["old_accuracy"][1])
    assert (out / "figures" / "tiny-2-continual.png").stat().st_size > 0
    assert (out / "figures" / "tiny-2-confusion-naive.png").stat().st_size > 0
    assert (out / "figures" / "tiny-2-confusion-replay__40_images_.png").stat().st_size > 0
    text = (out / "results.md").read_text()
    assert "Learning acc" in text and "## Continual evaluation and recency bias" in text
    assert "## Per-class accuracy after the last experience" in text and "Min-ACC" in text
    summary = json.loads((out / "results.json").read_text())["summary"]["tiny-2"]["naive"]
    assert summary["stability_gap"]["mean"] == pytest.approx(naive["stability_gap"])
    assert summary["learning_accuracy"]["mean"] == pytest.approx(naive["learning_accuracy"])
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {"learning_accuracy", "recency_bias", "min_accuracy", "stability_gap", "per_class_accuracy"} <= set(rows[0])

    # without the flag: no continual evaluation, the same training (numbers and FLOPs) as with it
    plain = tmp_path / "plain"
    assert bench(plain, tiny_npz, "--methods", "naive", "replay", "--epochs", "10") == 0
    for method, tracked in (("naive", naive), ("replay", replay)):
        r = record(plain, method)
        assert "continual_eval" not in r["settings"] and "stability_gap" not in r and "continual_eval" not in r
        assert r["recency_bias"] == tracked["recency_bias"] and r["per_class_accuracy"] == tracked["per_class_accuracy"]
        for field in ("accuracy_matrix", "step_flops_per_experience", "upkeep_flops_per_experience", "train_steps"):
            assert r[field] == tracked[field], (method, field)
    assert not (plain / "figures" / "tiny-2-continual.png").exists()
    assert (plain / "figures" / "tiny-2-confusion-naive.png").exists()


def test_a_resumed_run_keeps_the_trace_of_its_finished_experiences(tiny_npz, tmp_path, monkeypatch):
    out, flags = tmp_path / "runs", ("--methods", "naive", "--epochs", "3", "--eval-every", "2", "--eval-images", "8")
    saves = []
    real_save = runner.save_checkpoint

    def save_then_interrupt(path, *args):
        saves.append(path)
        if len(saves) == 2:  # after the first experience's checkpoint
            raise KeyboardInterrupt
        real_save(path, *args)

    monkeypatch.setattr(runner, "save_checkpoint", save_then_interrupt)
    assert bench(out, tiny_npz, *flags) == 130
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    assert bench(out, tiny_npz, *flags) == 0
    clean = tmp_path / "clean"
    assert bench(clean, tiny_npz, *flags) == 0
    resumed, uninterrupted = record(out), record(clean)
    assert resumed["continual_eval"] == uninterrupted["continual_eval"]
    assert resumed["stability_gap"] == uninterrupted["stability_gap"] is not None
    assert resumed["continual_eval_flops"] == uninterrupted["continual_eval_flops"]


def test_the_continual_flags_are_checked_before_anything_is_written(tiny_npz, tmp_path, capsys):
    for extra, said in ((("--eval-images", "5"), "give --eval-every STEPS too"),
                        (("--eval-every", "0"), "--eval-every: must be ≥ 1")):
        with pytest.raises(SystemExit) as refused:
            bench(tmp_path / "never", tiny_npz, "--methods", "naive", *extra)
        assert refused.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- W&B
def test_log_wandb_without_wandb_says_which_extra_to_install(tiny_npz, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails
    with pytest.raises(SystemExit) as refused:
        bench(tmp_path / "runs", tiny_npz, "--methods", "naive", "--log", "wandb")
    assert refused.value.code == 2
    assert capsys.readouterr().err.strip() == 'error: --log wandb needs wandb: pip install -e ".[wandb]"'
    assert not (tmp_path / "runs").exists()


def test_log_wandb_writes_an_offline_run_per_cell_with_the_metrics_and_replay_grids(tiny_npz, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "ctrl", "--backbone", "conv", "--epochs", "1",
                 "--eval-every", "2", "--eval-images", "8", "--log", "wandb") == 0
    logged = {}
    for method in ("naive", "ctrl"):
        (run,) = (out / "wandb" / "tiny-2" / method / "seed0" / "wandb").glob("offline-run-*")
        (events,) = run.glob("run-*.wandb")
        logged[method] = (run, events.read_bytes())
    for method, (run, data) in logged.items():
        for name in (b"Top1_Acc_Stream/eval_phase/test_stream", b"continual/old_classes_accuracy", b"last_accuracy",
                     b"stability_gap", b"command-"):
            assert name in data, (method, name)
    run, data = logged["ctrl"]
    assert b"replay/accuracy" in data  # the judge's score
    grids = list((run / "files" / "media" / "images" / "replay").glob("all_classes_*.png"))
    assert len(grids) == 2  # one replay grid per experience, as TensorBoard gets them
    assert not (out / "tensorboard" / "tiny-2").exists()  # --log wandb alone: no TensorBoard run per cell
