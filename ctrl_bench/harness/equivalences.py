"""Code versions that a refactor changed without changing any number, so that records made before
it are still reused. Each entry was written by ``python benchmarks/code_equivalence.py --base REV``,
which runs every method at REV and at the new code on the same generated scenario and lists only the
methods whose records came out bit for bit the same (accuracy matrices, Task-IL, forgetting, memory
in floats, replay judge). An entry counts only while the new code version is the current one: the
next edit of a method's code makes its old records stale again, as any edit does.

{method: {code version before: code version after}}

The refactor of 09c77fa (the harness's second redesign step) was checked against 3cdaf2f for every
method (all 17 same numbers); its entries were dropped when the runner began counting training FLOPs
(records of before that lack them, so they run again).
"""

EQUIVALENT_CODE: dict[str, dict[str, str]] = {}
