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


def learning_accuracy(A) -> float:
    """LA = (1/T) Σ_i A[i][i]: each experience's test data right after training on it, predicted among
    all the classes the model knows then (Riemer et al. 2019); how well a method learns what is new."""
    A = np.asarray(A, float)
    return float(np.mean(np.diag(A)))


def pooled_accuracy(accuracies, sizes) -> float:
    """Σ_j acc_j · n_j / Σ_j n_j: the accuracy over the pooled images of several experiences, from each
    one's accuracy ``accuracies[j]`` on its ``sizes[j]`` images."""
    a, w = np.asarray(accuracies, float), np.asarray(sizes, float)[: len(accuracies)]
    return float((a * w).sum() / w.sum())


def min_accuracy(during) -> float | None:
    """min-ACC (De Lange et al., ICLR 2023): (1/(T−1)) Σ_{i<T−1} min_{k>i, t ∈ evaluations during k}
    acc_i(t), the worst accuracy each experience i's data ever had once a later experience began, averaged
    over those experiences. ``during[k]``: the evaluations made while experience k trained, each a list of
    the accuracies on experiences 0..k−1. None when no later experience was evaluated (T = 1)."""
    T = len(during)
    worst = [min((point[i] for k in range(i + 1, T) for point in during[k]), default=None) for i in range(T - 1)]
    worst = [w for w in worst if w is not None]
    return float(np.mean(worst)) if worst else None


def stability_gap(before, during) -> float | None:
    """(1/(T−1)) Σ_{k≥1} (a_old(k, 0) − min_t a_old(k, t)): the accuracy on the classes of earlier
    experiences just before experience k (after experience k−1 ended), ``before[k]``, minus the lowest one
    while experience k trained, ``during[k]`` (its evaluations of those classes, pooled), averaged over the
    experiences after the first (``before[0]`` and ``during[0]`` are ignored). None when T = 1."""
    gaps = [before[k] - min(during[k]) for k in range(1, len(during)) if during[k]]
    return float(np.mean(gaps)) if gaps else None


def per_class_accuracy(confusion) -> list[float | None]:
    """acc_c = C[c][c] / Σ_j C[c][j], for the confusion matrix C (row: true class, column: predicted
    class); None for a class without test images."""
    C = np.asarray(confusion, float)
    totals = C.sum(1)
    return [float(C[c, c] / totals[c]) if totals[c] else None for c in range(len(C))]


def recency_bias(confusion, last_classes) -> float:
    """Σ_{j ∈ L} Σ_c C[c][j] / Σ C: the share of all test predictions that go to the classes L of the last
    experience (BiC, Wu et al. 2019); compare it with :func:`class_share` of L, their share of the test set."""
    C = np.asarray(confusion, float)
    return float(C[:, list(last_classes)].sum() / C.sum())


def class_share(confusion, classes) -> float:
    """Σ_{c ∈ L} Σ_j C[c][j] / Σ C: the share of the test images whose true class is in L."""
    C = np.asarray(confusion, float)
    return float(C[list(classes), :].sum() / C.sum())
