"""Paired comparisons over seeds: is a row's Last accuracy distinguishable from a reference row's?

Two rows of one scenario share a seed when both ran it; a seed fixes the class order and the
initialisation, so the two runs of a seed are a pair and their difference cancels what the seed
does to both. Over the n shared seeds, with differences dᵢ = Lastᵢ(row) − Lastᵢ(reference):

- mean d̄ and the 95 % confidence interval d̄ ± t₀.₉₇₅,ₙ₋₁ · s / √n (s: the sample standard
  deviation, ddof = 1);
- p of the paired t-test (``scipy.stats.ttest_rel``, two-sided) and of the Wilcoxon signed-rank
  test (``scipy.stats.wilcoxon``, two-sided, exact for small n; with n = 5 its smallest p is 0.0625);
- *distinguishable* when the interval excludes 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def paired_difference(row: dict[int, float], reference: dict[int, float]) -> dict | None:
    """The paired comparison of ``row`` against ``reference`` ({seed: Last}) over the seeds both
    have; None with fewer than 2 such seeds (no spread to test against)."""
    seeds = sorted(set(row) & set(reference))
    if len(seeds) < 2:
        return None
    d = np.array([row[s] - reference[s] for s in seeds], dtype=float)
    n, mean = len(d), float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # every seed the same difference: no spread, nothing random left to test
        low = high = mean
        t_p = 1.0 if mean == 0.0 else 0.0
    else:
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        t_p = float(stats.ttest_rel([row[s] for s in seeds], [reference[s] for s in seeds]).pvalue)
    w_p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)
    return {"n": n, "seeds": seeds, "mean": mean, "ci95": [low, high], "t_test_p": t_p, "wilcoxon_p": w_p,
            "distinguishable": not (low <= 0.0 <= high)}
