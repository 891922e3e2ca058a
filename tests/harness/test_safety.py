"""A results folder is safe to rerun on: nothing in it is unpickled, a damaged or foreign file is
named in one line and set aside (the cell runs again), records are keyed by their contents, one
command at a time, and every bad input is one line before anything is written."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from ctrl_bench.harness import cli
from helpers import cells_said, make_images, record_file, write_npz


def bench(out, data, *extra):
    return cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--backbone", "mlp", "--epochs", "1",
                     "--batch-size", "32", "--mem-size", "40", "--no-progress", "--out", str(out), *extra])


def record(out, method="naive", seed=0, scenario="tiny-2"):
    return json.loads((out / "records" / scenario / method / f"seed{seed}.json").read_text())


def interrupted_after_the_first_experience(out, data, monkeypatch, *extra):
    """Run naive until its first experience is checkpointed, then Ctrl-C; the checkpoint's path."""
    from ctrl_bench.harness import runner

    real = runner.save_checkpoint

    def save_then_stop(path, *args):
        real(path, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop)
    assert bench(out, data, "--methods", "naive", *extra) == 130
    monkeypatch.setattr(runner, "save_checkpoint", real)
    (checkpoint,) = (out / "checkpoints").rglob("*.pt")
    return checkpoint


class CopiesAFile:
    """A benign payload: unpickling it copies a file (what a crafted checkpoint could do)."""

    def __init__(self, src, dst):
        self.src, self.dst = str(src), str(dst)

    def __reduce__(self):
        return shutil.copyfile, (self.src, self.dst)


@pytest.mark.parametrize("where", ["whole file", "inside the state"])
def test_a_checkpoint_that_would_run_code_is_refused_set_aside_and_the_run_completes(
        tiny_npz, tmp_path, capsys, monkeypatch, where):
    out = tmp_path / "runs"
    checkpoint = interrupted_after_the_first_experience(out, tiny_npz, monkeypatch)
    marker = tmp_path / "payload-ran"
    payload = CopiesAFile(tiny_npz, marker)
    if where == "whole file":
        torch.save(payload, checkpoint)
    else:  # a well-formed checkpoint with the payload where plugin state goes
        saved = torch.load(checkpoint, weights_only=True)
        saved["state"]["plugins"][0] = {"clock": payload}
        torch.save(saved, checkpoint)
    capsys.readouterr()
    assert bench(out, tiny_npz, "--methods", "naive") == 0
    assert not marker.exists(), "the payload ran"
    printed = capsys.readouterr().out
    assert f"warning: {checkpoint} cannot be resumed from: not a checkpoint of tensors and plain data" in printed
    assert checkpoint.with_name(checkpoint.name + ".corrupt").exists()
    clean = tmp_path / "clean"
    assert bench(clean, tiny_npz, "--methods", "naive") == 0
    assert record(out)["accuracy_matrix"] == record(clean)["accuracy_matrix"]  # started again from scratch


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_is_set_aside_and_the_next_command_completes(tiny_npz, tmp_path, capsys, monkeypatch,
                                                                         damage):
    out = tmp_path / "runs"
    checkpoint = interrupted_after_the_first_experience(out, tiny_npz, monkeypatch)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    capsys.readouterr()
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0  # the other method runs too
    assert "cannot be resumed from" in capsys.readouterr().out
    assert {r["method"] for r in json.loads((out / "results.json").read_text())["runs"]} == {"naive", "replay"}


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tiny_npz, tmp_path, capsys, monkeypatch):
    from ctrl_bench.harness import runner

    out, saves = tmp_path / "runs", []
    real = runner.save_checkpoint

    def save_then_stop_at_the_second(path, *args):
        real(path, *args)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop_at_the_second)
    data = write_npz(tmp_path / "tiny.npz", n_classes=6)  # three experiences of two classes
    args = ["--scenario", f"npz:{data}", "--n-experiences", "3", "--backbone", "mlp", "--epochs", "1",
            "--no-progress", "--methods", "naive"]
    assert cli.main([*args, "--out", str(out)]) == 130
    monkeypatch.setattr(runner, "save_checkpoint", real)
    (checkpoint,) = (out / "checkpoints").rglob("*.pt")
    assert checkpoint.with_name(checkpoint.name + ".prev").exists()
    checkpoint.write_bytes(b"garbage")
    assert cli.main([*args, "--out", str(out)]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "clean")]) == 0
    resumed, clean = (json.loads((o / "records" / "tiny-3" / "naive" / "seed0.json").read_text())
                      for o in (out, tmp_path / "clean"))
    assert resumed["accuracy_matrix"] == clean["accuracy_matrix"]  # resumed from the first experience's checkpoint


def test_a_damaged_judge_is_set_aside_and_trained_again(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--methods", "ctrl", "--backbone", "conv",
            "--ctrl-epochs", "1", "--ctrl-batch-size", "64", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    (judge,) = (out / "judges").glob("*.pt")
    judge.write_bytes(judge.read_bytes()[:100])
    assert cli.main([*argv, "--reuse", "never"]) == 0
    printed = capsys.readouterr().out
    assert "is not a replay judge" in printed and "training the replay judge" in printed


def test_data_files_of_one_name_in_two_folders_keep_both_runs(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_npz(tmp_path / "a" / "tiny.npz"), write_npz(tmp_path / "b" / "tiny.npz", n_classes=2)
    out = tmp_path / "runs"
    assert bench(out, first, "--methods", "naive") == 0
    assert bench(out, second, "--methods", "naive") == 0
    assert "note: scenario label tiny-2 is taken by" in capsys.readouterr().out
    labels = {r["scenario"] for r in json.loads((out / "results.json").read_text())["runs"]}
    assert len(labels) == 2 and "tiny-2" in labels  # (not sorted: a hash may sort before "2")
    assert re.fullmatch(r"tiny-[0-9a-f]{6}-2", (labels - {"tiny-2"}).pop())
    assert bench(out, first, "--methods", "naive") == 0  # its label is stable: reused
    assert "tiny-2 naive seed 0: reused" in capsys.readouterr().out


def test_copies_links_and_malformed_records_are_named_and_left_out(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    folder = out / "records" / "tiny-2" / "naive"
    shutil.copy(folder / "seed0.json", folder / "seed0 (copy).json")
    (out / "records" / "tiny-2" / "loop").symlink_to("..")
    broken = json.loads(record_file(out, "replay").read_text())
    broken["last_accuracy"] = "oops"
    record_file(out, "replay").write_text(json.dumps(broken))
    capsys.readouterr()
    assert bench(out, tiny_npz, "--methods", "naive", "replay") == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    assert "seed0 (copy).json holds tiny-2 naive seed 0, whose record is" in printed.out
    assert "loop is a symbolic link; records are never read through links" in printed.out
    assert "tiny-2 replay (40 images) seed 0: running (its record is malformed (last_accuracy must be a number" in printed.out
    summary = json.loads((out / "results.json").read_text())["summary"]["tiny-2"]
    assert summary["naive"]["seeds"] == [0] and summary["replay (40 images)"]["seeds"] == [0]


def test_leftovers_of_interrupted_writes_and_finished_runs_are_cleaned(tiny_npz, tmp_path, monkeypatch):
    out = tmp_path / "runs"
    assert bench(out, tiny_npz, "--methods", "naive", "--keep-checkpoints") == 0
    (checkpoint,) = (out / "checkpoints").rglob("*.pt")
    stale = out / "records" / ".tmp-stale"
    stale.write_text("half a record")
    assert bench(out, tiny_npz, "--methods", "replay") == 0  # another cell: naive's leftovers go anyway
    assert not stale.exists() and not checkpoint.exists()
    files = {name: (out / name).read_text() for name in ("results.json", "results.csv", "results.md")}
    assert len(json.loads(files["results.json"])["runs"]) == 2 == files["results.csv"].count("\n") - 1


def test_a_second_command_into_a_folder_in_use_says_who_holds_it_or_waits(tiny_npz, tmp_path, capsys):
    out = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from ctrl_bench.harness.lock import out_lock\n"
        f"with out_lock({str(out)!r}, 'the holder'):\n"
        "    print('held', flush=True); time.sleep(3)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--backbone", "mlp", "--epochs", "1",
                  "--methods", "naive", "--no-progress", "--out", str(out)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out} is in use by `the holder` (pid {holder.pid}") and err.count("\n") == 1
    assert not (out / "records").exists()
    started = time.monotonic()
    assert bench(out, tiny_npz, "--methods", "naive", "--wait") == 0
    assert time.monotonic() - started > 0.5 and "waiting for `the holder`" in capsys.readouterr().out
    holder.wait()


def one_line_error(tmp_path, capsys, argv, code):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == code and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("flags, message", [
    (["--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    (["--lr", "nan"], "argument --lr: must be a finite number, got nan"),
    (["--methods", "ctrl", "--option", "ctrl.lr=inf"], "--option 'ctrl.lr=inf': must be a finite number"),
    (["--methods", "ctrl", "--ctrl-new-weight", "inf"], "--option 'ctrl.new_weight=inf': must be a finite number"),
    (["--methods", "ctrl", "--option", "ctrl.anchor_weight=-1"], "ctrl.anchor_weight must be ≥ 0 and finite"),
    (["--methods", "lwf", "--option", "lwf.temperature=0"], "lwf.temperature must be a number > 0, got 0"),
    (["--methods", "naive", "--option", "naive.epochs=0"], "naive.epochs must be an integer ≥ 1, got 0"),
    (["--workers", "2", "--cpus-per-cell", "inf"], "argument --cpus-per-cell: must be a finite number, got inf"),
])
def test_every_number_is_finite_and_in_range_before_anything_runs(tiny_npz, tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", *flags,
                                            "--out", str(out)], 2)
    assert message in err and not out.exists()


@pytest.mark.parametrize("make_out, message", [
    (lambda t: t / "file" / "runs", "is a file; give a folder"),
    (lambda t: t / ("x" * 300), "is 300 bytes long; a folder name can have at most 255"),
    (lambda t: t.joinpath(*["y" * 200] * 20), "give a shorter path"),
    (lambda t: "/proc/ctrl-bench-runs", "cannot write in /proc"),
])
def test_an_out_folder_that_cannot_be_written_is_refused_before_anything_is_created(
        tiny_npz, tmp_path, capsys, make_out, message):
    (tmp_path / "file").write_text("a file")
    out = make_out(tmp_path)
    err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{tiny_npz}", "--n-experiences", "2", "--methods",
                                            "naive", "--out", str(out)], 2)
    assert message in err
    assert sorted(os.listdir(tmp_path)) == ["file", "tiny.npz"]


def npz_with(tmp_path, x_train, y_train, x_test, y_test, name="data.npz"):
    path = tmp_path / name
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


@pytest.mark.parametrize("side, backbone, message", [
    (30, "crate", "CRATE tiny cuts images into a 4 × 4 grid of patches: 30 × 30 does not divide; pad to 32 × 32 "
                  "or use --backbone conv"),
    (1, "conv", "the conv pair takes images of at least 8 × 8 pixels"),
])
def test_images_the_networks_cannot_take_are_named_before_training(tmp_path, capsys, side, backbone, message):
    x = np.zeros((8, side, side), np.uint8)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    data = npz_with(tmp_path, x, y, x, y)
    err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{data}", "--n-experiences", "1", "--methods", "naive",
                                            "--backbone", backbone, "--out", str(tmp_path / "out")], 1)
    assert message in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("label, dtype, message", [
    (10**12, np.int64, "y_train has labels 1000000000000 (1 image); class ids must be 0..K-1"),
    (2**64 - 1, np.uint64, "y_train has labels 18446744073709551615 (1 image)"),
])
def test_labels_far_out_of_range_are_named_without_allocating_by_them(tmp_path, capsys, label, dtype, message):
    x, y = make_images(2, 4)
    y = y.astype(dtype)
    y[0] = label
    data = npz_with(tmp_path, x, y, x, y.astype(np.int64) % 2)
    err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{data}", "--n-experiences", "1", "--methods", "naive",
                                            "--backbone", "mlp", "--out", str(tmp_path / "out")], 1)
    assert message in err


def test_what_is_not_a_readable_npz_file_is_named(tmp_path, capsys):
    x, y = make_images(2, 4)
    (tmp_path / "folder.npz").mkdir()
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "loop.npz").symlink_to(tmp_path / "loop.npz")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x_train=np.array([object()] * 8), y_train=y, x_test=x, y_test=y)
    corrupt = tmp_path / "corrupt.npz"
    good = npz_with(tmp_path, x, y, x, y, name="good.npz")
    blob = bytearray(open(good, "rb").read())
    start = blob.find(b"y_train.npy") + 200  # inside that member's data
    blob[start:start + 40] = b"\0" * 40
    corrupt.write_bytes(bytes(blob))
    for path, message in [("folder.npz", "is a folder, not an .npz file"),
                          ("fifo.npz", "is not a regular file (a FIFO, socket or device)"),
                          ("loop.npz", "cannot be opened: Too many levels of symbolic links"),
                          ("objects.npz", "array x_train holds Python objects (dtype object), which are never read"),
                          ("corrupt.npz", "array y_train cannot be read")]:
        err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{tmp_path / path}", "--n-experiences", "1",
                                                "--methods", "naive", "--out", str(tmp_path / "out")], 1)
        assert message in err and str(tmp_path / path) in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_npz_says_so(tiny_npz, tmp_path, capsys):
    os.chmod(tiny_npz, 0)
    err = one_line_error(tmp_path, capsys, ["--scenario", f"npz:{tiny_npz}", "--methods", "naive",
                                            "--out", str(tmp_path / "out")], 1)
    assert "cannot be read: Permission denied" in err
