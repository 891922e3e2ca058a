#!/usr/bin/env python3
"""What counting training FLOPs costs: each method's run on a scenario, as every run counts them
(``harness/flops.py``: a stratified 1 % of the steps and the upkeep), and with the counter replaced by
a plugin that counts nothing. Every run is a fresh process (runs in one process slow down one after
another), the two kinds alternate, and each is repeated; prints the median wall seconds of both (the
record's ``wall_seconds``: training and evaluation), the overhead, and the FLOPs counted. Run it alone
on the machine. ``--epochs 10`` (a third of the quick preset's) is an upper bound of the quick
preset's overhead: the steps' share of it scales with the epochs, the upkeep's does not.

    python benchmarks/flops_overhead.py                               # ctrl and der on mnist_5k, seed 0
    python benchmarks/flops_overhead.py --methods ctrl naive --epochs 30 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

from avalanche.core import SupervisedPlugin

from ctrl_bench.harness import RunConfig, run, runner
from ctrl_bench.harness.records import RecordStore


class NoCounting(SupervisedPlugin):
    """The counter's interface, counting nothing."""
    step_flops = upkeep_flops = peak_memory = 0
    memory_kind = ""

    def __init__(self):
        super().__init__()
        self.front = SupervisedPlugin()

    def close(self):
        pass


def child(method: str, scenario: str, threads: int, epochs: int, counting: bool) -> None:
    """One timed run in this process; prints its wall seconds and FLOPs as JSON."""
    if not counting:
        runner.TrainingFlops = NoCounting
    with tempfile.TemporaryDirectory() as out:
        run(RunConfig(scenarios=(scenario,), methods=(method,), threads=threads, out=out, progress=False,
                      overrides={"epochs": epochs, "first_epochs": epochs}))
        record = next(iter(RecordStore(out).all_records()[0].values()))
    print(json.dumps({"wall": record["wall_seconds"], "flops": record.get("train_flops")}))


def timed(method: str, args, counting: bool) -> dict:
    command = [sys.executable, __file__, "--child", "count" if counting else "plain", "--methods", method,
               "--scenario", args.scenario, "--threads", str(args.threads), "--epochs", str(args.epochs)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="mnist_5k")
    p.add_argument("--methods", nargs="+", default=["ctrl", "der"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--child", choices=["plain", "count"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.methods[0], args.scenario, args.threads, args.epochs, args.child == "count")
        return
    print(f"{args.scenario}, quick preset at {args.epochs} epochs per experience, seed 0, {args.threads} threads, "
          f"median of {args.repeats} runs each, alternating")
    print("| method | s counting | s not counting | overhead | training FLOPs |")
    print("|---|---|---|---|---|")
    for method in args.methods:
        walls = {True: [], False: []}
        flops = None
        for _ in range(args.repeats):
            for counting in (False, True):
                result = timed(method, args, counting)
                walls[counting].append(result["wall"])
                flops = result["flops"] if counting else flops
        counted, plain = statistics.median(walls[True]), statistics.median(walls[False])
        print(f"| {method} | {counted:.1f} | {plain:.1f} | {100 * (counted / plain - 1):+.1f} % | {flops:.3e} |",
              flush=True)


if __name__ == "__main__":
    main()
