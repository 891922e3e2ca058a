"""Every bad input ends in one line on stderr that names the argument or array, a non-zero exit,
and nothing written under --out."""

import json

import numpy as np
import pytest

from ctrl_bench.harness import cli


def run(tmp_path, capsys, *args):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--methods", "naive", "--backbone", "mlp", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert not out.exists(), "a bad input must not create anything under --out"
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return exit_info.value.code, err


def npz_with(tiny_npz, tmp_path, **changes):
    arrays = dict(np.load(tiny_npz))
    arrays.update(changes)
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def with_labels(y, index, label):
    y = y.astype(np.int64)  # the fixture stores uint8
    y[index] = label
    return y


@pytest.mark.parametrize("args, message", [
    (["--n-experiences", "0"], "argument --n-experiences: must be ≥ 1, got 0"),
    (["--seeds", "-1"], "argument --seeds: must be ≥ 0 and ≤ 4294967295, got -1"),
    (["--seeds", "1.5"], "argument --seeds: expected an integer, got '1.5'"),
    (["--threads", "0"], "argument --threads: must be ≥ 1, got 0"),
    (["--lr", "-0.1"], "argument --lr: must be > 0, got -0.1"),
    (["--reuse", "sometimes"], "argument --reuse: invalid choice: 'sometimes'"),
    (["--methods", "naive", "--seeds", "0", "0"], "--methods and --seeds must not repeat a value"),
])
def test_bad_arguments(tiny_npz, tmp_path, capsys, args, message):
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tiny_npz}", *args)
    assert code == 2 and message in err


@pytest.mark.parametrize("args, message", [
    (["--lr", "1e300"], "argument --lr: must be > 0 and ≤ 3.403e+38, got 1e300"),
    (["--batch-size", str(2**64)], f"argument --batch-size: must be ≥ 1 and ≤ {2**63 - 1}, got {2**64}"),
    (["--option", "naive.lr=1e300"], "naive.lr must be a number ≤ 3.403e+38 (a float32), got 1e+300"),
    (["--option", "naive.batch_size=64.5"], "naive.batch_size must be an integer ≥ 1"),
])
def test_values_no_tensor_can_hold_are_refused_naming_the_option(tiny_npz, tmp_path, capsys, args, message):
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tiny_npz}", *args)
    assert code == 2 and message in err


def test_a_tuned_json_holding_an_overflowing_value_is_refused(tiny_npz, tmp_path, capsys):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"format": 1, "scenario": "tiny-2-val25", "trials": 2, "seeds": [0],
                                 "methods": {"naive": {"settings": {"lr": 1e300}}}}))
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tiny_npz}", "--settings", str(tuned))
    assert code == 2 and "naive.lr must be a number ≤ 3.403e+38 (a float32), got 1e+300" in err


@pytest.mark.parametrize("option, message", [
    ("ctrl.drift_map=abc", "ctrl.drift_map must be a number, got 'abc'"),
    ("ctrl.gamma=1e300", "ctrl.gamma must be at most 3.403e+38 in size (a float32), got 1e+300"),
    ("ctrl.n_directions=2.5", "ctrl.n_directions must be an integer, got 2.5"),
    ("ctrl.class_spread=3", "ctrl.class_spread must be true or false, got 3"),
    ("ctrl.constraint=4", "ctrl.constraint must be a word, got 4"),
])
def test_a_ctrl_option_of_the_wrong_kind_is_named(tiny_npz, tmp_path, capsys, option, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", f"npz:{tiny_npz}", "--methods", "ctrl", "--option", option, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err == f"error: {message}" and not out.exists()


def test_n_experiences_that_do_not_divide_the_classes(tiny_npz, tmp_path, capsys):
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tiny_npz}", "--n-experiences", "3")
    assert code == 1
    assert "its 4 classes (0..3) cannot be split evenly into 3 experiences; choose --n-experiences from 1, 2, 4" in err


def test_test_label_absent_from_training(tiny_npz, tmp_path, capsys):
    y_test = with_labels(np.load(tiny_npz)["y_test"], [0, 1], 7)
    code, err = run(tmp_path, capsys, "--scenario", npz_with(tiny_npz, tmp_path, y_test=y_test), "--n-experiences", "2")
    assert code == 1 and "y_test has labels that y_train lacks: 7 (2 images)" in err


def test_stray_training_label_after_a_gap_is_named(tiny_npz, tmp_path, capsys):
    y_train = with_labels(np.load(tiny_npz)["y_train"], [5], 12)
    code, err = run(tmp_path, capsys, "--scenario", npz_with(tiny_npz, tmp_path, y_train=y_train))
    assert code == 1
    assert "y_train labels must be the contiguous class ids 0..K-1, but after 0..3 come 12 (1 image)" in err
    assert "4, 5, 6, 7, 8, 9, 10, 11 never occur" in err


def test_stray_training_label_next_to_the_others_is_named(tiny_npz, tmp_path, capsys):
    arrays = np.load(tiny_npz)
    y_train, y_test = with_labels(arrays["y_train"], [5], 4), with_labels(arrays["y_test"], [5], 4)
    code, err = run(tmp_path, capsys, "--scenario", npz_with(tiny_npz, tmp_path, y_train=y_train, y_test=y_test),
                    "--n-experiences", "2")
    assert code == 1
    assert "5 classes (0..4) cannot be split evenly into 2 experiences (suspiciously rare in y_train: 4 (1 image)" in err


def test_negative_label(tiny_npz, tmp_path, capsys):
    y_test = with_labels(np.load(tiny_npz)["y_test"], [3], -1)
    code, err = run(tmp_path, capsys, "--scenario", npz_with(tiny_npz, tmp_path, y_test=y_test))
    assert code == 1 and "y_test has negative labels -1 (1 image)" in err


def test_class_without_test_images(tiny_npz, tmp_path, capsys):
    arrays = np.load(tiny_npz)
    keep = arrays["y_test"] != 2
    code, err = run(tmp_path, capsys, "--scenario",
                    npz_with(tiny_npz, tmp_path, x_test=arrays["x_test"][keep], y_test=arrays["y_test"][keep]))
    assert code == 1 and "y_test has no images of these classes of y_train: 2 (48 images)" in err


def test_class_order_that_is_not_a_permutation(tiny_npz, tmp_path, capsys):
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tiny_npz}", "--n-experiences", "2",
                    "--class-order", "0", "1", "2", "2")
    assert code == 1 and "--class-order must be a permutation of 0..3, got 0 1 2 2" in err


def test_file_that_is_not_a_zip(tmp_path, capsys):
    path = tmp_path / "junk.npz"
    path.write_text("x_train, y_train\n1, 2\n")
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{path}")
    assert code == 1 and "is not a NumPy .npz archive (not a zip file)" in err and "pickle" not in err


def test_missing_npz(tmp_path, capsys):
    code, err = run(tmp_path, capsys, "--scenario", f"npz:{tmp_path / 'nowhere.npz'}")
    assert code == 1 and "no such .npz file" in err


def test_out_that_is_a_file(tiny_npz, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--scenario", f"npz:{tiny_npz}", "--methods", "naive", "--out", str(out)])
    assert exit_info.value.code == 2 and "is a file; give a folder" in capsys.readouterr().err
    assert out.read_text() == "not a folder"
