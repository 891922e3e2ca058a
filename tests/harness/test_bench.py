"""run_bench as a researcher uses it: provenance, reuse of valid records only, results that never
lose rows, Ctrl-C and resume, bit-identical CPU reruns."""

import hashlib
import json
import re

import numpy as np
import pytest
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import torch

from ctrl_bench.harness import cells, cli, grid, provenance, runner
from ctrl_bench.harness.records import Cell
from helpers import cells_said, copy_of_the_code, record_file
from scenarios import load_data


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--epochs", "1",
                           "--batch-size", "32", "--mem-size", "40", "--no-progress", "--out", str(out), *extra])


def record(out, method="naive", seed=0):
    return json.loads(record_file(out, method, seed).read_text())


def console(capsys) -> dict[str, str]:
    """What the console said about each run, e.g. {"naive seed 0": "reused (record still valid)"}."""
    return cells_said(capsys.readouterr().out)


def md_rows(out, section):
    """The table rows of one section of results.md."""
    text = (out / "results.md").read_text().split(f"## {section}")[1].split("##")[0]
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Scenario")
            and not line.startswith("| Method")]


def scalars(tb_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard shows for a run folder: tag → [(step, value)]."""
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_record_carries_its_provenance(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "--seeds", "3", "--threads", "1") == 0
    printed = capsys.readouterr().out
    run = record(out, seed=3)
    prov = run["provenance"]
    assert prov["command"].startswith("ctrl-bench --scenario npz:") and "--seeds 3" in prov["command"]
    assert re.fullmatch(r"[0-9a-f]{40}( \(dirty\))?", prov["git_commit"])
    assert (prov["torch"], prov["torchvision"], prov["avalanche_lib"]) == ("2.14.1", "0.29.1", "0.6.0")
    assert prov["python"].startswith("3.") and prov["device"].startswith("cpu: ") and prov["torch_threads"] == 1
    with open(tiny_npz, "rb") as fh:
        assert prov["data_sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert prov["code_version"] == provenance.code_version("naive")
    assert sorted(run["class_order"]) == [0, 1, 2, 3]
    assert run["experience_classes"] == [sorted(run["class_order"][:2]), sorted(run["class_order"][2:])]
    assert len(run["experience_seconds"]) == 2 and sum(run["experience_seconds"]) == pytest.approx(run["wall_seconds"])
    assert run["settings"]["threads"] == 1
    header = (out / "results.md").read_text().split("## ")[0]
    assert prov["command"] in header and "torch 2.14.1" in header and "avalanche-lib 0.6.0" in header
    assert "torch threads: 1" in header and prov["git_commit"] in header
    assert " ".join(map(str, run["class_order"])) in md_rows(out, "Runs")[0]
    # the console shows the accuracy matrix, in %
    matrix = "\n".join("    " + " ".join(f"{100 * a:3.0f}" for a in row) for row in run["accuracy_matrix"])
    assert "tiny-2 naive seed 3 (ran;" in printed and matrix in printed
    assert not (out / "checkpoints").exists()  # deleted once the record is written


def test_reuse_only_while_settings_and_data_match(tiny_npz, tmp_path, capsys):
    out, data = tmp_path / "runs", tiny_npz  # the fixture's own file (per test): changed below
    assert bench(out, data, "--methods", "naive", "--keep-checkpoints") == 0
    assert console(capsys) == {"naive seed 0": "running (no record yet)"}
    assert len(list((out / "checkpoints").rglob("*.pt"))) == 1  # kept
    assert bench(out, data, "--methods", "naive") == 0
    assert console(capsys) == {"naive seed 0": "reused (record still valid)"}

    arrays = dict(np.load(data))
    arrays["x_train"][0, 0, 0] ^= 1  # one pixel, same path, same shapes
    np.savez(data, **arrays)
    assert bench(out, data, "--methods", "naive") == 0
    assert console(capsys) == {"naive seed 0": "running (data changed)"}
    with open(data, "rb") as fh:
        assert record(out)["provenance"]["data_sha256"] == hashlib.sha256(fh.read()).hexdigest()

    assert bench(out, data, "--methods", "naive", "--epochs", "2") == 0
    assert console(capsys) == {"naive seed 0": "running (settings changed)"}
    assert bench(out, data, "--methods", "naive", "--reuse", "always") == 0
    assert console(capsys) == {"naive seed 0": "reused (--reuse always, although settings changed)"}
    assert bench(out, data, "--methods", "naive", "--epochs", "2", "--reuse", "never") == 0
    assert console(capsys) == {"naive seed 0": "running (--reuse never)"}
    assert not (out / "checkpoints").exists()  # the kept one was stale, and went


def test_a_code_edit_reruns_the_methods_it_changes_and_prose_reruns_nothing(tiny_npz, tmp_path, capsys, monkeypatch):
    code = copy_of_the_code(tmp_path / "code")
    monkeypatch.setattr(provenance, "CODE_ROOT", code)  # the reuse key hashes the copy, which is edited
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    capsys.readouterr()
    naive = code / "baselines" / "naive.py"
    naive.write_text(naive.read_text().replace('"""Naive fine-tuning', '"""Naive fine-tuning (edited)') + "# a comment\n")
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    assert set(console(capsys).values()) == {"reused (record still valid)"}  # comments and docstrings are not code
    with open(code / "baselines" / "naive.py", "a") as fh:
        fh.write("    return 1\n")
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    assert console(capsys) == {"naive seed 0": "running (code changed)", "replay seed 0": "reused (record still valid)"}
    with open(code / "ctrl_bench" / "metrics.py", "a") as fh:  # shared by every method
        fh.write("EDITED = True\n")
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    assert console(capsys) == {"naive seed 0": "running (code changed)", "replay seed 0": "running (code changed)"}


def test_results_never_lose_rows(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "replay", "--seeds", "0", "1") == 0
    assert [r.split(" | ")[0] for r in md_rows(out, "Last and Avg")] == ["| naive", "| replay (40 images)"]
    assert len(md_rows(out, "Runs")) == 4

    assert bench(out, tiny_npz, "--methods", "naive") == 0  # one cell asked, all four kept
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted((r["method"], r["seed"], r["source"]) for r in runs) == [
        ("naive", 0, "reused"), ("naive", 1, "earlier"), ("replay", 0, "earlier"), ("replay", 1, "earlier")]
    assert [r.split(" | ")[0] for r in md_rows(out, "Last and Avg")] == ["| naive", "| replay (40 images)"]
    assert len(md_rows(out, "Runs")) == 4
    assert "| tiny-2 | replay (40 images) | 2 |" in md_rows(out, "Details")[1] and "earlier 0 1" in md_rows(out, "Details")[1]
    assert (out / "results.csv").read_text().count("\n") == 5

    # naive seed 0 under other settings: it no longer pools with seed 1, and both stay
    assert bench(out, tiny_npz, "--methods", "naive", "--epochs", "2") == 0
    labels = [r.split(" | ")[0] for r in md_rows(out, "Last and Avg")]
    assert labels[0] == "| naive" and re.fullmatch(r"\| naive @[0-9a-f]{6}", labels[1]) and labels[2] == "| replay (40 images)"
    details = md_rows(out, "Details")
    assert "| naive | 1 |" in details[0] and "ran 0" in details[0] and "earlier 1" in details[1]
    assert len(md_rows(out, "Runs")) == 4


def test_ctrl_c_exits_130_and_the_same_command_resumes_without_duplicate_tensorboard_steps(
        tiny_npz, tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs"
    saves = []
    real_save = runner.save_checkpoint

    def save_then_interrupt(path, *args):
        saves.append(path)
        if len(saves) == 2:  # the checkpoint of the second experience: trained, evaluated, logged
            raise KeyboardInterrupt
        real_save(path, *args)

    monkeypatch.setattr(runner, "save_checkpoint", save_then_interrupt)
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 130
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert captured.err.strip() == (
        f"interrupted: 0 of 2 runs done (records in {out / 'records'}); tiny-2 naive seed 0 stopped after 1 of 2 "
        "experiences (checkpoint kept). Finished experiences are kept: rerun the same command to resume.")
    tb_dir = out / "tensorboard" / "tiny-2" / "naive" / "seed0"
    exp1_tag = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp001"
    assert len(scalars(tb_dir)[exp1_tag]) == 2  # the interrupted experience's scalars are on disk

    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    assert console(capsys)["naive seed 0"] == "running (resuming from its checkpoint, no record yet)"
    resumed = scalars(tb_dir)
    assert len(resumed[exp1_tag]) == 2
    for tag, points in resumed.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{tag} holds steps {steps}"

    clean = tmp_path / "clean"
    assert bench(clean, tiny_npz, "--methods", "naive") == 0
    assert record(out)["accuracy_matrix"] == record(clean)["accuracy_matrix"]
    # same scalars as an uninterrupted run, forgetting and BWT of the first experience included
    assert resumed == scalars(clean / "tensorboard" / "tiny-2" / "naive" / "seed0")
    assert "ExperienceForgetting/eval_phase/test_stream/Task000/Exp000" in resumed


def test_ctrl_c_before_any_run_writes_nothing(tiny_npz, tmp_path, capsys, monkeypatch):
    from ctrl_bench.harness import bench as harness_bench

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness_bench, "load_data", interrupted)
    assert bench(tmp_path / "runs", tiny_npz, "--methods", "naive") == 130
    assert capsys.readouterr().err.strip() == "interrupted before any run started; nothing was written"
    assert not (tmp_path / "runs").exists()


def test_same_seed_and_threads_reproduce_bit_for_bit(tiny_npz, tmp_path):
    matrices = []
    for out in (tmp_path / "a", tmp_path / "b"):
        assert bench(out, tiny_npz, "--methods", "naive", "--backbone", "conv", "--size", "tiny", "--threads", "2",
                     "--seeds", "5") == 0
        matrices.append(record(out, seed=5)["accuracy_matrix"])
    assert matrices[0] == matrices[1]  # exact float equality, not a tolerance


def test_memory_in_floats_oracles_marked_and_the_figures_written(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "replay", "ncm", "--option", "ncm.oracle=true", "--seeds", "0", "1") == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert {(r["method"], r["memory_floats"], r["oracle"] is None) for r in runs} == {
        ("replay", 40 * 28 * 28, True), ("ncm", 4 * 128, False)}  # images × C·H·W; K class means of d = 128
    rows = md_rows(out, "Last and Avg")
    flops = {r["method"]: r["train_flops"] for r in runs if r["seed"] == 0}
    assert rows[0].startswith("| replay (40 images) |") and rows[0].endswith(f"| 31,360 | {flops['replay']:.3g} |")
    assert rows[1].startswith("| ncm [oracle] |") and rows[1].endswith(f"| 512 | {flops['ncm']:.3g} |")
    assert all(row.startswith("| tiny-2 | ncm [oracle] |") for row in md_rows(out, "Runs") if "| ncm" in row)
    assert "- [oracle] ncm: an oracle, not a class-incremental result: NCM means refitted" in (out / "results.md").read_text()

    tb_dir = out / "tensorboard" / "_figures"
    for kind in ("accuracy", "memory", "flops"):
        path = out / "figures" / f"tiny-2-{kind}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500 and image[..., :3].std() > 0.05
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    assert sorted(events.Tags()["images"]) == ["tiny-2/accuracy", "tiny-2/confusion/ncm",
                                               "tiny-2/confusion/replay (40 images)",
                                               "tiny-2/flops", "tiny-2/memory"]
    assert bench(out, tiny_npz, "--methods", "replay", "ncm", "--option", "ncm.oracle=true", "--seeds", "0", "1") == 0
    assert len([f for f in tb_dir.iterdir() if f.name.startswith("events")]) == 1  # the latest figures only


def test_a_failed_write_ends_in_one_line_naming_the_file_and_keeps_finished_records(tiny_npz, tmp_path, capsys,
                                                                                    monkeypatch):
    """A full disk while the second cell saves its first checkpoint: exit 1, one line on stderr that
    names the file, the first cell's record kept, no half-written file, and --out free again."""
    import errno
    import os

    from ctrl_bench.harness import atomic

    out, staged = tmp_path / "runs", atomic._staged

    def full_disk(path, data):
        if "seed1" in path and path.endswith(".pt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return staged(path, data)

    monkeypatch.setattr(atomic, "_staged", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        bench(out, tiny_npz, "--methods", "naive", "--seeds", "0", "1")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed1" in err and "No space left on device" in err
    assert err.startswith("error: cannot write ") and str(out / "checkpoints") in err
    assert record(out, seed=0)["last_accuracy"] >= 0 and not record_file(out, "naive", 1).exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(atomic.TMP_PREFIX)]
    monkeypatch.setattr(atomic, "_staged", staged)
    assert bench(out, tiny_npz, "--methods", "naive", "--seeds", "0", "1") == 0  # the lock was released
    assert console(capsys) == {"naive seed 0": "reused (record still valid)", "naive seed 1": "running (no record yet)"}


def test_every_path_runs_a_cell_through_one_function(tiny_npz, tmp_path, monkeypatch):
    """The sequential (and distributed) path and the Ray worker's body both call cells.execute."""
    calls = []
    real = cells.execute

    def counted(plan, *args, **kwargs):
        calls.append(str(plan.cell))
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(cells, "execute", counted)
    monkeypatch.setattr(grid, "execute", counted)
    assert bench(tmp_path / "runs", tiny_npz, "--methods", "naive") == 0
    assert calls == ["tiny-2 naive seed 0"]
    cpu = torch.device("cpu")
    plan = cells.CellPlan("tiny", Cell("tiny-2", "naive", 1), record(tmp_path / "runs")["settings"], {},
                          str(tmp_path / "worker.pt"))
    expect = {"code": provenance.code_version("naive"), "device": provenance.device_name(cpu)}
    result = grid.work_cell(plan, load_data(f"npz:{tiny_npz}", 2), None, cpu, None, expect)
    assert calls[-1] == "tiny-2 naive seed 1" and result["record"]["seed"] == 1


def test_records_made_before_a_refactor_checked_equivalent_are_reused(tiny_npz, tmp_path, capsys, monkeypatch):
    """A record whose code version a refactor changed is reused only where equivalences.py lists
    that change for its method, and only while the new version is the current one."""
    from ctrl_bench.harness import equivalences

    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive") == 0
    path = record_file(out, "naive")
    made = json.loads(path.read_text())
    made["reuse_key"]["code"] = "0123456789abcdef"  # as the code before the refactor hashed
    path.write_text(json.dumps(made))
    capsys.readouterr()
    assert bench(out, tiny_npz, "--methods", "naive", "--keep-checkpoints") == 0
    assert console(capsys) == {"naive seed 0": "running (code changed)"}
    path.write_text(json.dumps(made))
    monkeypatch.setattr(equivalences, "EQUIVALENT_CODE",
                        {"naive": {"0123456789abcdef": provenance.code_version("naive")}}, raising=True)
    monkeypatch.setattr("ctrl_bench.harness.records.EQUIVALENT_CODE", equivalences.EQUIVALENT_CODE)
    assert bench(out, tiny_npz, "--methods", "naive") == 0
    assert console(capsys) == {
        "naive seed 0": "reused (record still valid: made before a refactor checked to change no number)"}
    monkeypatch.setattr("ctrl_bench.harness.records.EQUIVALENT_CODE", {"naive": {"0123456789abcdef": "another"}})
    assert bench(out, tiny_npz, "--methods", "naive") == 0
    assert console(capsys) == {"naive seed 0": "running (code changed)"}
