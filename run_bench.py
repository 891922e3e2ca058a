#!/usr/bin/env python3
"""ctrl-bench from a checkout: ``python run_bench.py ARGS`` is the ``ctrl-bench ARGS`` command
(``ctrl_bench/harness/cli.py``; ``--help`` lists every option)."""

from ctrl_bench.harness.cli import command

if __name__ == "__main__":
    command(prog="python run_bench.py")
