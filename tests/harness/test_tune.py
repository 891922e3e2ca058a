"""ctrl-bench tune: search spaces, the seeded search, the tuned.json, and runs with its settings."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import baselines
from baselines import in_space, method_names, search_space, valid_space
from ctrl_bench.harness import cli
from ctrl_bench.harness.cells import method_settings
from ctrl_bench.harness.presets import common_settings
from ctrl_bench.harness.tune import draw_trials, load_tuned
from ctrl_bench.ictrl.config import DEFAULTS as CTRL_DEFAULTS


def test_every_method_has_a_search_space_and_its_defaults_lie_in_it():
    common = common_settings("quick", {}, "mnist")
    for method in method_names():
        space = search_space(method)
        assert set(baselines.SHARED_SEARCH_SPACE) <= set(space) and all(valid_space(s) for s in space.values())
        own = method_settings(method, "quick", "mnist", common, {})
        for option in baselines.SHARED_SEARCH_SPACE:  # lr, batch_size: the method's own value, else the preset's
            assert in_space(space[option], own.get(option, common[option])), (method, option)
    for option, spec in baselines.declared("ctrl", "SEARCH_SPACE").items():
        value = method_settings("ctrl", "quick", "mnist", common, {}).get(option, CTRL_DEFAULTS.get(option))
        assert in_space(spec, value), option


def test_the_search_is_seeded_in_its_space_and_gives_two_methods_the_same_shared_values():
    der, replay = search_space("der"), search_space("replay")
    trials = draw_trials(der, 6, seed=3)
    assert trials[0] == {} and trials == draw_trials(der, 6, seed=3) and trials != draw_trials(der, 6, seed=4)
    assert all(set(t) == set(der) and all(in_space(der[k], v) for k, v in t.items()) for t in trials[1:])
    assert [{k: t[k] for k in replay} for t in trials[1:]] == draw_trials(replay, 6, seed=3)[1:]
    assert all(isinstance(t["batch_size"], int) for t in trials[1:])


def test_tune_refuses_a_command_that_could_read_the_test_set(tiny_npz, tmp_path, capsys):
    out = tmp_path / "t"
    with pytest.raises(SystemExit) as refused:
        cli.main(["tune", "--scenario", f"npz:{tiny_npz}", "--methods", "naive", "--out", str(out)])
    assert refused.value.code == 2 and "give --validation" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"methods": 3}')
    with pytest.raises(SystemExit) as refused:
        cli.main(["--scenario", f"npz:{tiny_npz}", "--methods", "naive", "--settings", str(bad), "--out", str(out)])
    assert refused.value.code == 2 and "give the tuned.json that ctrl-bench tune wrote" in capsys.readouterr().err


def test_a_methods_tuned_source_changes_with_its_own_choice_only(tmp_path):
    entry = {"settings": {"lr": 1e-3}, "validation_last": {"mean": 0.5, "std": 0.0}}
    tuned = {"format": 1, "scenario": "s-5-val10", "trials": 16, "seeds": [0], "command": "a", "methods": {"der": entry}}
    path = tmp_path / "tuned.json"

    def source(content):
        path.write_text(json.dumps(content))
        return {method: entry["sha256"] for method, entry in load_tuned(str(path)).items()}

    der = source(tuned)["der"]
    assert source({**tuned, "command": "b", "methods": {"der": entry, "naive": entry}})["der"] == der
    assert source({**tuned, "methods": {"der": {**entry, "settings": {"lr": 1e-2}}}})["der"] != der
    assert source({**tuned, "scenario": "t-5-val10"})["der"] != der


def no_test_set(tiny_npz, tmp_path):
    """The tiny data with test arrays that any run which reads them refuses (float images)."""
    arrays = dict(np.load(tiny_npz))
    arrays["x_test"] = arrays["x_test"].astype(np.float32)
    path = tmp_path / "no-test" / "tiny.npz"
    path.parent.mkdir()
    np.savez(path, **arrays)
    return str(path)


def ctrl_bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ctrl_bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_tune_runs_the_same_trials_for_two_methods_on_validation_and_its_settings_reproduce(tiny_npz, tmp_path, capsys):
    data = no_test_set(tiny_npz, tmp_path)
    common = ["--scenario", f"npz:{data}", "--n-experiences", "2", "--validation", "0.25", "--epochs", "1",
              "--seeds", "0", "1", "--methods", "naive", "der", "--threads", "1", "--no-progress"]
    with pytest.raises(SystemExit) as read_test:  # a run that reads the test set refuses
        cli.main(["--scenario", f"npz:{data}", "--n-experiences", "2", "--epochs", "1", "--methods", "naive",
                  "--no-progress", "--out", str(tmp_path / "plain")])
    assert read_test.value.code != 0 and "x_test" in capsys.readouterr().err and not (tmp_path / "plain").exists()
    tune = ctrl_bench("tune", *common, "--trials", "2", "--search-seed", "5", "--out", "tuned", cwd=tmp_path)
    assert tune.returncode == 0, tune.stderr[-2000:]
    tuned = json.loads((tmp_path / "tuned" / "tuned.json").read_text())
    assert tuned["seeds"] == [0, 1] and tuned["trials"] == 2 and set(tuned["methods"]) == {"naive", "der"}
    naive, der = tuned["methods"]["naive"], tuned["methods"]["der"]
    assert [t["settings"] for t in naive["trials"]] == draw_trials(search_space("naive"), 2, 5)
    assert [{k: t["settings"][k] for k in ("lr", "batch_size")} for t in der["trials"][1:]] == \
        [t["settings"] for t in naive["trials"][1:]]  # the same values of the shared options
    assert "| der |" in (tmp_path / "tuned" / "tuning.md").read_text() and (tmp_path / "tuned" / "tuning.png").exists()

    records = sorted((tmp_path / "tuned" / "trials").rglob("seed*.json"))
    assert len(records) == 2 * 2 * 2
    before = {p: p.read_bytes() for p in records}
    shutil.rmtree(tmp_path / "tuned" / "ray")  # Ray Tune's own folder: written again only if a trial goes to Ray
    again = ctrl_bench("tune", *common, "--trials", "2", "--search-seed", "5", "--out", "tuned", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.read_bytes() for p in records} == before  # no finished trial ran again
    assert again.stdout.count("(reused)") == 2 * 2 and not (tmp_path / "tuned" / "ray").exists()

    rerun = ctrl_bench(*common, "--settings", "tuned/tuned.json", "--out", "with-settings", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    runs = json.loads((tmp_path / "with-settings" / "results.json").read_text())["runs"]
    for method, entry in tuned["methods"].items():
        lasts = [r["last_accuracy"] for r in sorted(runs, key=lambda r: r["seed"]) if r["method"] == method]
        assert lasts == entry["trials"][entry["chosen_trial"]]["per_seed"]
    labels = (tmp_path / "with-settings" / "results.md").read_text()
    assert "naive [tuned on tiny-2-val25 (2 trials)]" in labels
    assert load_tuned(str(tmp_path / "tuned" / "tuned.json"))["der"]["trials"] == 2

    tuned_records = {p: p.read_bytes() for p in (tmp_path / "with-settings" / "records").rglob("seed*.json")}
    assert all(f"tuned-{load_tuned(str(tmp_path / 'tuned' / 'tuned.json'))['der']['sha256']}" in str(p)
               for p in tuned_records)
    naive_only = [a for a in common if a != "der"]
    assert cli.main([*naive_only, "--out", str(tmp_path / "with-settings")]) == 0  # the defaults' cells sit beside them
    assert {p: p.read_bytes() for p in tuned_records} == tuned_records
    naive_records = list((tmp_path / "with-settings" / "records").rglob("naive/seed*.json"))
    assert len(naive_records) == 2 and not any("tuned-" in str(p) for p in naive_records)


def test_a_trial_that_fails_counts_as_failed_and_a_rerun_does_not_repeat_it(tmp_path, monkeypatch):
    from ctrl_bench.harness import tune
    from ctrl_bench.harness.config import RunConfig

    calls = []

    def diverges(config):
        calls.append(config.method_options)
        raise RuntimeError("all elements of input should be between 0 and 1")

    monkeypatch.setattr(tune, "run", diverges)
    base = RunConfig(methods=("icarl",), seeds=(0,), validation=0.1)
    out = str(tmp_path / "trial")
    assert tune.run_trial(base, "icarl", {"lr": 0.01}, out) is None
    assert tune.run_trial(base, "icarl", {"lr": 0.01}, out) is None and len(calls) == 1
    assert calls[0] == {"icarl": {"lr": 0.01}}
    failed = json.loads((tmp_path / "trial" / tune.FAILED_FILE).read_text())
    assert failed["settings"] == {"lr": 0.01} and "between 0 and 1" in failed["error"]
    assert tune.trial_scores(base, "icarl", out) is None


@pytest.mark.slow
def test_a_tune_stopped_by_sigterm_says_what_it_kept_and_the_same_command_finishes(tiny_npz, tmp_path):
    """SIGTERM (timeout, a scheduler, preemption) once a trial has finished: Ray is shut down, no native
    stack dump, one closing line, exit 143; the same command then reuses the finished trials."""
    args = ["tune", "--scenario", f"npz:{no_test_set(tiny_npz, tmp_path)}", "--n-experiences", "2",
            "--validation", "0.25", "--epochs", "2", "--seeds", "0", "--methods", "naive", "--threads", "1",
            "--no-progress", "--trials", "6", "--out", "tuned"]
    command = subprocess.Popen([sys.executable, "-m", "ctrl_bench", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in command.stdout:  # the first finished trial
        if line.startswith("tune naive: trial"):
            command.send_signal(signal.SIGTERM)
            break
    _, err = command.communicate(timeout=300)
    closing = [line for line in err.splitlines() if line.strip()]
    assert command.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM received" not in err and "PC: @" not in err and "Traceback" not in err, err[-2000:]
    assert closing[-1].startswith("stopped by SIGTERM; interrupted: ") and "rerun the same command" in closing[-1]
    kept = int(closing[-1].split("interrupted: ")[1].split(" of ")[0])
    assert kept >= 1
    again = ctrl_bench(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("(reused)") >= kept and (tmp_path / "tuned" / "tuned.json").exists()
