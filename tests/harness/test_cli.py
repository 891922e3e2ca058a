"""The command line as a user meets it: the console script, the package imported from anywhere, and
a typed configuration the harness takes from Python without faking a command line."""

import json
import shutil
import subprocess
import sys

from ctrl_bench.harness import RunConfig, run


def test_the_harness_imports_from_any_folder_and_the_console_script_answers(tmp_path):
    subprocess.run([sys.executable, "-c", "import ctrl_bench.harness, ctrl_bench.harness.cli"], cwd=tmp_path, check=True)
    script = shutil.which("ctrl-bench")
    command = [script] if script else [sys.executable, "-m", "ctrl_bench"]
    shown = subprocess.run([*command, "--help"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert shown.startswith("usage: ") and "--option METHOD.NAME=VALUE" in shown and "ctrl.anchor_weight" in shown


def test_a_run_configured_in_python(tiny_npz, tmp_path):
    out = tmp_path / "runs"
    outcome = run(RunConfig(scenarios=(f"npz:{tiny_npz}",), methods=("naive",), n_experiences=2, seeds=(1,),
                            overrides={"backbone": "mlp", "epochs": 1}, out=str(out), progress=False, threads=1))
    assert outcome.failed == [] and "| naive |" in outcome.summary
    record = json.loads((out / "records" / "tiny-2" / "naive" / "seed1.json").read_text())
    assert record["settings"]["config"]["epochs"] == 1 and record["settings"]["threads"] == 1
