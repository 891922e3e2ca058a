"""What a result cost and how sure it is: training FLOPs in every record, budget curves, paired
statistics over seeds, and figures whose labels never cover each other."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

from ctrl_bench.harness import cli
from ctrl_bench.harness.budget import MAX_CHECKS, epochs_within, fit_line, next_check, settled_epochs
from ctrl_bench.harness.flops import TrainingFlops
from ctrl_bench.harness.plots import accuracy_figure, flops_figure, memory_figure
from ctrl_bench.harness.results import paired, summarise
from ctrl_bench.harness.stats import paired_difference
from helpers import record_file


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--batch-size", "32",
                     "--mem-size", "40", "--no-progress", "--threads", "1", "--out", str(out), *extra])


def record(out, method, epochs=None):
    path = record_file(out, method)
    if epochs is not None:
        path = path.parent / f"ep{epochs}" / path.name
    return json.loads(path.read_text())


# ---------------------------------------------------------------- paired statistics
def test_the_paired_difference_is_scipy_s_on_known_numbers():
    row = {0: 0.90, 1: 0.91, 2: 0.92, 3: 0.95, 7: 0.5}
    reference = {0: 0.93, 1: 0.93, 2: 0.95, 3: 0.96, 4: 0.99}
    diff = paired_difference(row, reference)
    a, b = [0.90, 0.91, 0.92, 0.95], [0.93, 0.93, 0.95, 0.96]  # seeds 0-3: the ones both ran
    test = stats.ttest_rel(a, b)
    assert diff["n"] == 4 and diff["seeds"] == [0, 1, 2, 3]
    assert diff["mean"] == pytest.approx(-0.0225)
    assert diff["ci95"] == pytest.approx(list(test.confidence_interval(0.95)))
    assert diff["t_test_p"] == pytest.approx(test.pvalue)
    assert diff["wilcoxon_p"] == pytest.approx(stats.wilcoxon(np.subtract(a, b)).pvalue)
    assert diff["wilcoxon_p"] == pytest.approx(0.125)  # n = 4, all one sign: 2 / 2⁴
    assert diff["distinguishable"] and diff["ci95"][1] < 0


def test_a_difference_the_seeds_cannot_tell_from_zero_is_marked_and_one_seed_is_no_test():
    diff = paired_difference({0: 0.5, 1: 0.7, 2: 0.6}, {0: 0.6, 1: 0.6, 2: 0.6})
    assert diff["ci95"][0] < 0 < diff["ci95"][1] and not diff["distinguishable"]
    assert paired_difference({0: 0.5, 1: 0.7}, {1: 0.6, 2: 0.6}) is None


def run_of(method, seed, last, **extra):
    return {"scenario": "s", "method": method, "seed": seed, "last_accuracy": last,
            "average_incremental_accuracy": last, "forgetting": 0.0, "bwt": 0.0, "wall_seconds": 1.0,
            "source": "ran", "reuse_key": {"m": method}, **extra}


def test_the_reference_row_is_the_best_or_the_one_asked_for():
    runs = [run_of("a", s, 0.8 + 0.01 * s) for s in range(3)] + [run_of("b", s, 0.7 + 0.02 * s) for s in range(3)]
    summary = summarise(runs)
    best = paired(summary)["s"]
    assert best["reference"] == "a" and best["rows"]["b"]["mean"] == pytest.approx(-0.09)
    chosen = paired(summary, reference="b")["s"]
    assert chosen["reference"] == "b" and chosen["rows"]["a"]["mean"] == pytest.approx(0.09)


# ---------------------------------------------------------------- figures at any length
def fake_runs(n_experiences: int, n_methods: int = 17) -> list[dict]:
    rng = np.random.default_rng(0)
    runs = []
    for m, seed in itertools.product(range(n_methods), range(2)):
        curve = list(rng.uniform(0.3, 1.0, n_experiences))
        # methods cluster: several rows at the same memory and compute, as gem / gdumb / icarl do
        runs.append(run_of(f"method_{m}", seed, curve[-1], seen_accuracy=curve,
                           experience_classes=[[c] for c in range(n_experiences)],
                           memory_floats=0 if m < 4 else 392_000 if m < 9 else 10 ** (3 + m % 4),
                           train_flops=1e12 * (1 + m % 3), reuse_key={"m": m}))
    return runs


def overlapping(texts, renderer) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text() and t.get_visible()]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


@pytest.mark.parametrize("n_experiences", [5, 10, 20])
def test_no_label_covers_another_with_17_methods(n_experiences):
    summary = summarise(fake_runs(n_experiences))
    runs_by_label = {label: (entry, [r for r in fake_runs(n_experiences) if r["method"] == entry["method"]])
                     for label, entry in summary["s"].items()}
    for draw in (accuracy_figure, memory_figure, flops_figure):
        fig = draw("s", runs_by_label)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        ax = fig.axes[0]
        assert not overlapping(ax.get_xticklabels(), renderer), draw.__name__
        annotations = [t for t in ax.texts if t.get_text() != "//"]
        assert not overlapping(annotations, renderer), draw.__name__
        assert len(ax.get_legend().get_texts()) == 17  # every row named once, in the legend
    labels = [t.get_text() for t in accuracy_figure("s", runs_by_label).axes[0].get_xticklabels()]
    assert (labels[0] == "1\n(1 class)") if n_experiences <= 5 else labels[0] == "1\n(1)"


# ---------------------------------------------------------------- training FLOPs
def test_every_record_counts_its_training_flops_and_an_extra_pass_shows(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "lwf", "replay", "--epochs", "2", "4") == 0
    naive2, naive4 = record(out, "naive", 2), record(out, "naive", 4)
    for r in (naive2, naive4):
        assert r["train_flops"] == sum(r["train_flops_per_experience"]) > 0 and r["peak_memory_bytes"] > 0
        assert len(r["train_flops_per_experience"]) == 2 and "stratified" in r["flops_counting"]
    assert naive4["train_flops"] / naive2["train_flops"] == pytest.approx(2.0, rel=0.05)  # twice the epochs
    lwf, replay = record(out, "lwf", 2), record(out, "replay", 2)
    # the second experience: LwF's frozen previous model runs on every batch, replay doubles its batch
    assert lwf["step_flops_per_experience"][1] > 1.2 * naive2["step_flops_per_experience"][1]
    assert replay["step_flops_per_experience"][1] > 1.5 * naive2["step_flops_per_experience"][1]
    assert lwf["step_flops_per_experience"][0] == naive2["step_flops_per_experience"][0]  # nothing extra yet
    text = (out / "results.md").read_text()
    assert "Training FLOPs" in text and "naive (4 epochs)" in text
    assert (out / "figures" / "tiny-2-flops.png").exists()


class _PhasedSteps:
    """A stand-in strategy for the FLOPs counter: one epoch of ``steps`` steps, each an n × n matrix
    product (2n³ FLOPs), n = 8 before step ``change`` and 16 from it; ``phased`` says so in step_phase."""

    def __init__(self, steps: int, change: int, phased: bool):
        self.device, self.train_epochs, self.dataloader = "cpu", 1, range(steps)
        self.steps, self.change, self.phased, self.k = steps, change, phased, 0

    @property
    def step_phase(self):
        return (self.k >= self.change) if self.phased else None

    def run(self, counter: TrainingFlops) -> int:
        counter.before_training(self)
        counter.before_training_epoch(self)
        for self.k in range(self.steps):
            counter.front.before_training_iteration(self)
            n = 16 if self.k >= self.change else 8
            torch.ones(n, n) @ torch.ones(n, n)
            counter.after_training_iteration(self)
        counter.after_training(self)
        return counter.step_flops


def test_a_step_that_changes_within_an_experience_is_counted_exactly_when_its_phase_is_declared():
    small, large = 2 * 8**3, 2 * 16**3
    # 100 planned steps: the sample counts steps 0 and 50, each for a block of 50 steps
    assert _PhasedSteps(100, 70, phased=False).run(TrainingFlops()) == 100 * small  # blind to the change
    assert _PhasedSteps(100, 70, phased=True).run(TrainingFlops()) == 70 * small + 30 * large
    assert _PhasedSteps(100, 30, phased=True).run(TrainingFlops()) == 30 * small + 70 * large


# ---------------------------------------------------------------- compute-matched budgets
def test_fit_line_and_epochs_within_on_known_numbers():
    assert fit_line([(1, 5.0), (2, 8.0)]) == pytest.approx((2.0, 3.0))
    assert fit_line([(1, 5.0), (2, 8.0), (3, 11.0)]) == pytest.approx((2.0, 3.0))
    assert epochs_within(14.0, 2.0, 3.0) == 4 and epochs_within(13.9, 2.0, 3.0) == 3
    assert epochs_within(4.9, 2.0, 3.0) == 0
    with pytest.raises(ValueError):
        fit_line([(2, 8.0), (2, 9.0)])


def phased_cost(epochs: int) -> float:
    """FLOPs of a method whose last 70 % of epochs (rounded up to whole epochs) cost a third of the
    others, plus a fixed upkeep: off the line its 1- and 2-epoch runs draw (as i-CTRL's finish is)."""
    cheap = epochs - math.ceil(round(0.3 * epochs, 9))
    return 10.0 + 3.0 * (epochs - cheap) + 1.0 * cheap


def search(cost, budget: float) -> tuple[int, int]:
    """What the harness does: the line through 1 and 2 epochs, then the checks; (epochs, checks)."""
    a, b = fit_line([(1, cost(1)), (2, cost(2))])
    points, guess, checks = {1: cost(1), 2: cost(2)}, max(epochs_within(budget, a, b), 1), 0
    while guess is not None and guess not in points and checks < MAX_CHECKS:
        points[guess], checks = cost(guess), checks + 1
        guess = next_check(points, budget)
    return settled_epochs(points, budget), checks


@pytest.mark.parametrize("budget", [40.0, 60.0, 75.5, 100.0])
def test_the_checks_find_the_most_epochs_within_the_budget_off_the_line(budget):
    epochs, checks = search(phased_cost, budget)
    best = max(e for e in range(1, 200) if phased_cost(e) <= budget)
    assert epochs == best and checks <= MAX_CHECKS
    assert max(epochs_within(budget, *fit_line([(1, phased_cost(1)), (2, phased_cost(2))])), 1) != best  # the line misses


def test_a_method_on_its_line_needs_one_check():
    assert search(lambda e: 2.0 + 3.0 * e, 14.5) == (4, 1)
    assert next_check({1: 5.0, 2: 8.0, 4: 14.0}, 14.5) is None and next_check({1: 5.0, 2: 8.0, 5: 17.0}, 14.5) == 4


def test_budget_flops_gives_each_method_the_epochs_that_fit(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as refused:
        bench(tmp_path / "never", tiny_npz, "--methods", "naive", "--budget-flops", "1e9", "--epochs", "2")
    assert refused.value.code == 2
    assert "does not combine with --epochs" in capsys.readouterr().err and not (tmp_path / "never").exists()

    with pytest.raises(SystemExit) as refused:  # not even one epoch fits
        bench(out, tiny_npz, "--methods", "naive", "replay", "--budget-flops", "1")
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "holds less than one epoch per experience of naive" in error
    probes = [record(out / "flops-probes", "naive", e)["train_flops"] for e in (1, 2)]
    a, b = probes[0] - (probes[1] - probes[0]), probes[1] - probes[0]
    assert float(error.rsplit("give at least ", 1)[1]) == pytest.approx(a + b, rel=1e-2)

    budget = a + 3.5 * b  # naive: 3 epochs fit, 4 do not
    assert bench(out, tiny_npz, "--methods", "naive", "replay", "--budget-flops", f"{budget:.6g}") == 0
    said = capsys.readouterr().out
    assert "naive (1 epoch) seed 0: reused" in said  # the probes are measured once
    naive_dir = record_file(out, "naive").parent / f"flops{budget:.3g}"
    naive = json.loads((naive_dir / "ep3" / "seed0.json").read_text())
    assert naive["cell_epochs"] == 3 and naive["cell_budget_flops"] == pytest.approx(budget, rel=1e-5)
    assert naive["train_flops"] == pytest.approx(a + 3 * b, rel=0.02) and naive["train_flops"] <= budget
    replay_dir = record_file(out, "replay").parent / f"flops{budget:.3g}"
    (replay,) = [json.loads(p.read_text()) for p in replay_dir.glob("ep*/seed0.json")]
    assert replay["cell_epochs"] < 3  # its buffer's images make an epoch dearer: fewer fit
    text = (out / "results.md").read_text()
    assert "naive (compute-matched)" in text and "replay (40 images, compute-matched)" in text
    assert f"F = {budget:.3g} (naive 3, replay (40 images) {replay['cell_epochs']} epochs)" in text
