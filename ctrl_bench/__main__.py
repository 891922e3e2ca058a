"""``python -m ctrl_bench ARGS`` is the ``ctrl-bench ARGS`` command."""

import sys

from .harness.cli import main

sys.exit(main(prog="python -m ctrl_bench"))
