"""The prepared GPU check: its commands are ctrl-bench commands, and it runs on the CPU as a dry run."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ctrl_bench.harness import cli

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_every_command_of_the_gpu_check_parses():
    # two scenarios that need no ../shared (the default's CIFAR-10 subset is left out where it is missing)
    shown = subprocess.run([sys.executable, str(SCRIPT), "--print-commands", "--scenarios", "mnist_5k", "synthetic:10"],
                           check=True, capture_output=True, text=True).stdout
    commands = [line for line in shown.splitlines() if line.startswith("ctrl-bench ")]
    assert len(commands) >= 2 * 17 and any("--preset paper --backbone conv" in c for c in commands)
    parser = cli.build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        cli.to_run_config(args, command).check()


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_as_a_dry_run(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--methods", "naive", "ctrl",
                           "--scenarios", "synthetic:10:16:8", "--skip-paper"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("| ok |") == 2 and "FAILURE" not in done.stdout
