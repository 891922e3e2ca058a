"""benchmarks/compute_breakdown.py: its phases and parts account for every FLOP the harness counts,
list every phase a run played, and leave what is trained unchanged (tiny generated data, 1 epoch)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from avalanche.core import SupervisedPlugin

from baselines import get_method
from ctrl_bench.harness import runner
from ctrl_bench.ictrl import ICTRLConfig
from ctrl_bench.ictrl.plugins import replay_count

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compute_breakdown.py"


def load_script():
    spec = importlib.util.spec_from_file_location("compute_breakdown", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PhasesPlayed(SupervisedPlugin):
    """The ``step_phase`` of every step, as the strategy says it."""

    def __init__(self):
        super().__init__()
        self.phases = []

    def before_training_iteration(self, strategy, **kwargs):
        self.phases.append(strategy.step_phase)


def harness_run(script, method, data):
    """The same cell trained by the harness's own plugins: its FLOPs count and the trained strategy."""
    ctx, scene, _ = script.build_cell(method, data, 1, 0, 2, torch.device("cpu"))
    strategy, _, counters, _ = runner._start(get_method(method).build, ctx, 0, [], False, "")
    total = 0
    for experience in scene.benchmark.train_stream:
        strategy.train_epochs = ctx.epochs
        strategy.train(experience, eval_streams=[])
        total += counters.flops.step_flops + counters.flops.upkeep_flops
    counters.flops.close()
    return total, strategy


def part(table, starts):
    found = [p for p in table["parts"] if p["part"].startswith(starts)]
    assert len(found) == 1, [p["part"] for p in table["parts"]]
    return found[0]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_phases_and_parts_add_up_every_phase_is_listed_and_training_is_unchanged(tiny_npz, one_thread):
    script = load_script()
    data = f"npz:{tiny_npz}"
    played = PhasesPlayed()
    results = {}
    for method in ("ctrl", "der"):
        result = script.breakdown(method, data, epochs=1, steps_per_phase=2, n_experiences=2, return_strategy=True,
                                  extra_plugins=[played] if method == "ctrl" else [])
        strategy = result.pop("strategy")
        results[method] = result
        phases = result["phases"]
        # phases' FLOPs and seconds sum to the totals; the steps' phases hold every step
        assert sum(p["flops"] for p in phases) == pytest.approx(result["total_flops"], rel=1e-9)
        assert sum(p["seconds"] for p in phases) == pytest.approx(result["total_seconds"], rel=1e-9)
        assert sum(p["steps"] for p in phases) == result["steps"] > 0
        assert all(p["seconds"] >= 0 for p in phases) and result["total_flops"] > 0
        # each phase's parts sum to its average step, and its steps × that step to the phase's FLOPs
        for p in (p for p in phases if p["kind"] == "steps"):
            table = result["parts"][p["phase"]]
            parts = sum(x["flops_per_step"] for x in table["parts"])
            assert parts == pytest.approx(table["flops_per_step"], rel=1e-9)
            assert parts * table["steps"] == pytest.approx(p["flops"], rel=0.02)
            assert sum(x["seconds_per_step"] for x in table["parts"]) == pytest.approx(table["seconds_per_step"])
        upkeep = next(p for p in phases if p["kind"] == "upkeep")
        assert sum(x["flops"] for x in result["upkeep_parts"]) == pytest.approx(upkeep["flops"], rel=1e-9)
        # the same total as the harness's own count of the same cell, and the same weights: nothing changed
        harness_flops, plain = harness_run(script, method, data)
        assert result["total_flops"] == pytest.approx(harness_flops, rel=0.02)
        for (name, a), (_, b) in zip(strategy.model.state_dict().items(), plain.model.state_dict().items()):
            assert torch.equal(a, b), name

    ctrl, der = results["ctrl"], results["der"]
    # a step counted whole against the sum of its parts (the warm-up's batch of 16 has 6 steps)
    assert ctrl["whole_step_check"]["keys"]
    assert ctrl["whole_step_check"]["max_relative_deviation"] < 0.02
    # every phase ctrl played is listed (1 epoch: the first experience warms the decoder up, the second plays)
    listed = {p["step_phase"] for p in ctrl["phases"] if p["kind"] == "steps"}
    assert listed == set(played.phases) == {"decoder warm-up", "game"}
    game = ctrl["parts"]["game (later experiences)"]
    for name in ("f on the new images", "g on the codes", "f on the decoded images and anchors", "rate terms",
                 "backward: ∇f", "backward: ∇g"):
        assert part(game, name)["flops_per_step"] > 0, name
    replayed = replay_count(ICTRLConfig().replay_ratio, 96)  # the anchors' codes of a batch of 96
    assert part(game, "g on the codes")["rows"] == f"96 new + {replayed} replayed"
    assert part(game, "f on the decoded images and anchors")["rows"] == f"{96 + replayed} decoded + {replayed} anchors"
    assert part(game, "Adam steps")["flops_per_step"] == 0  # element-wise: no counted FLOPs
    upkeep = {x["part"]: x["flops"] for x in ctrl["upkeep_parts"]}
    assert upkeep["set-up: anchors decoded (g) and encoded (f)"] > 0
    assert upkeep["after: drift map (anchors encoded again, map fitted, statistics moved)"] > 0
    later = der["parts"]["step (later experiences)"]
    assert part(later, "forward: model on the batch and the buffer batch")["rows"] == "64 new + 64 buffer"
    assert part(later, "backward")["flops_per_step"] > 0
    assert [x["part"] for x in der["upkeep_parts"] if x["flops"] > 0] == [
        "after: buffer updated (logits of the experience's images, reservoir)"]
    # the tables and the ratios
    ratios = script.ratios({"tiny": results})["tiny"]
    assert ratios["pair"] == ["ctrl", "der"]
    assert ratios["flops"] == pytest.approx(ctrl["total_flops"] / der["total_flops"])
    text = script.report(ctrl) + script.ratio_report("tiny", ratios, {"tiny": results})
    for phase in ctrl["phases"]:
        assert phase["phase"] in text


def test_a_counted_step_takes_its_keys_uncounted_seconds_else_a_per_row_rate_else_its_own():
    script = load_script()

    def step(experience, phase, rows, mode, seconds):
        return {"experience": experience, "phase": phase, "rows": rows, "key": (experience, phase, rows, 2),
                "mode": mode, "seconds": seconds}

    steps = [step(0, "game", 10, "counted", 5.0), step(0, "game", 10, "plain", 1.0), step(0, "game", 10, "timed", 1.2),
             step(0, "game", 4, "counted", 9.0),  # no uncounted step of its key: the experience's rate per row
             step(1, "game", 8, "whole", 3.0),  # none in its experience: its group's (later experiences) … none
             step(1, "decoder finish", 8, "counted", 2.0)]
    script._step_seconds(steps)
    assert [s["estimated"] for s in steps] == pytest.approx([1.1, 1.0, 1.2, 4 * 2.2 / 20, 3.0, 2.0])
    assert [s["under_counter"] for s in steps] == [False, False, False, False, True, True]
