#!/usr/bin/env python3
"""ctrl-bench from a checkout: ``python run_bench.py ARGS`` is the ``ctrl-bench ARGS`` command
(``ctrl_bench/harness/cli.py``; ``--help`` lists every option)."""

import sys

from ctrl_bench.harness.cli import main as _main


def main(argv=None) -> int:
    return _main(argv, prog="python run_bench.py")


if __name__ == "__main__":
    sys.exit(main())
