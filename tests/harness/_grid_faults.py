"""Faults for the Ray workers of test_grid.py, installed as their ``worker_process_setup_hook``: once
a cell has saved the checkpoint of its first experience, it raises, its worker dies, or it hangs, as
the JSON file named by ``CTRL_BENCH_TEST_FAULTS`` says, e.g. ``{"replay/seed1": "raise",
"naive/seed1": "kill", "naive/seed0": "hang"}`` (keys: part of the checkpoint's path). The
harness has no hook for this: the function that writes checkpoints is wrapped in each worker."""

import json
import os
import signal
import time


def install() -> None:
    from ctrl_bench.harness import runner

    save = runner.save_checkpoint

    def save_then_fault(path, rows, *args):
        save(path, rows, *args)
        try:
            with open(os.environ["CTRL_BENCH_TEST_FAULTS"]) as fh:
                faults = json.load(fh)
        except (KeyError, OSError, ValueError):
            return
        for where, fault in faults.items():
            if where in path.replace(os.sep, "/") and len(rows) == 1:
                if fault == "raise":
                    raise RuntimeError(f"injected failure in {where}")
                if fault == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault == "hang":
                    time.sleep(300)

    runner.save_checkpoint = save_then_fault
