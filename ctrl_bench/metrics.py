"""Class-incremental summary metrics from an accuracy matrix.

``A[i][j]`` is the accuracy on the test data of experience j after training on experience i;
``sizes[j]`` the number of test samples of experience j (so that "accuracy on the classes seen so
far" is the accuracy over their pooled test samples, as the iCaRL and i-CTRL papers report it).
"""

from __future__ import annotations

import numpy as np


def seen_accuracy(A, sizes) -> np.ndarray:
    """a_i = accuracy over the pooled test samples of experiences 0..i after training on i."""
    A, w = np.asarray(A, float), np.asarray(sizes, float)
    return np.array([(A[i, : i + 1] * w[: i + 1]).sum() / w[: i + 1].sum() for i in range(len(A))])


def last_accuracy(A, sizes) -> float:
    """Accuracy on all classes after the final experience."""
    return float(seen_accuracy(A, sizes)[-1])


def average_incremental_accuracy(A, sizes) -> float:
    """(1/T) Σ_i a_i, the first experience included."""
    return float(seen_accuracy(A, sizes).mean())


def forgetting(A) -> float:
    """Mean over experiences j < T−1 of max_{i < T−1} A[i][j] − A[T−1][j] (Chaudhry et al. 2018)."""
    A = np.asarray(A, float)
    T = len(A)
    if T < 2:
        return 0.0
    return float(np.mean([A[j : T - 1, j].max() - A[T - 1, j] for j in range(T - 1)]))


def backward_transfer(A) -> float:
    """BWT = mean over j < T−1 of A[T−1][j] − A[j][j] (Lopez-Paz & Ranzato 2017)."""
    A = np.asarray(A, float)
    T = len(A)
    if T < 2:
        return 0.0
    return float(np.mean([A[T - 1, j] - A[j, j] for j in range(T - 1)]))
