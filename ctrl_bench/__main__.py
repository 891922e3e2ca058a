"""``python -m ctrl_bench ARGS`` is the ``ctrl-bench ARGS`` command."""

from .harness.cli import command

command(prog="python -m ctrl_bench")
