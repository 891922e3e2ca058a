"""Code versions that a refactor changed without changing any number, so that records made before
it are still reused. Each entry was written by ``python benchmarks/code_equivalence.py --base REV``,
which runs every method at REV and at the new code on the same generated scenario and lists only the
methods whose records came out bit for bit the same (accuracy matrices, Task-IL, forgetting, memory
in floats, replay judge, and since the FLOPs counter's phases the training FLOPs per experience). An
entry counts only while the new code version is the current one: the next edit of a method's code
makes its old records stale again, as any edit does.

The table lives in ``equivalences.json`` beside this file, ``{method: {code version before: code version
after}}``: data, so that the harness's code names no method.

The refactor of 09c77fa (the harness's second redesign step) was checked against 3cdaf2f for every
method (all 17 same numbers); its entries were dropped when the runner began counting training FLOPs
(records of before that lack them, so they run again).

The next round (``--budget-flops``, the scenarios ``textures:K``, ``shapes:K`` and ``digits``, ctrl's
``first_steps`` and ``warmup_encoder``) was checked against 92ddba4 and against 2cd2592, the commits
of the 5-seed headline records: 16 methods the same numbers; ctrl changed (its new defaults).

The tuner's round (search spaces, ``lr`` a per-method option, DER's α and β options, ``--settings``)
was checked against 766a9b5 (all 17 methods the same numbers), 92ddba4 and 2cd2592 (16 the same,
ctrl changed by its new defaults as before).

The speed round (the CRATE patch embedding's input gradient as a matrix product; the game's rate terms
over the classes present, with per-class Gram matrices) was checked against 0deac18: all 17 the same
numbers on the check's scenario, but ctrl's entry was left out: its Gram matrices are summed in
another order, and on the MNIST subset in 10 experiences its accuracies differ (seed 0: Last 0.860
before, 0.901 after), so its records run again. The other 16 never compute a rate term, and the patch
embedding gives the convolution's numbers bit for bit (``tests/core/test_networks.py``).

The FLOPs counter's phases (a strategy's ``step_phase``; the first step of each phase is counted) were
checked against 396edfe: all 17 the same numbers, FLOPs included, on the check's scenario. ctrl's entry
was left out by hand: that scenario's 2 epochs never reach i-CTRL's finish (the last 30 % of a later
experience), so it cannot see the change, and ctrl's FLOPs at 30 epochs do change. The other 16 have
no ``step_phase``, so their counted steps are the same ones by construction. Since then the check's
second experience has 4 epochs, and its last one is i-CTRL's finish (``decoder_finish=0`` changes its
step FLOPs there, 7.35e9 against 9.01e9), so the check sees the phases.

ctrl's ``encode`` (f in chunks, shared by the anchors and the drift map) was checked against f7b7482
(the code of the ``drift_map`` test-set records) and c7a09b0: the same numbers, FLOPs included, on the
check's scenario, which reaches the drift map (2 experiences).
"""

import json
from pathlib import Path

EQUIVALENT_CODE: dict[str, dict[str, str]] = json.loads(Path(__file__).with_suffix(".json").read_text())
