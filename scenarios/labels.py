"""Up-front checks of a data set's labels, so that a bad label is named before any training.

Class ids must be the contiguous integers 0..K-1 in ``y_train`` (they are not remapped: a gap or a
stray id is far more often a data bug than a wish), ``y_test`` must hold exactly the same classes,
and the K classes must split evenly into the experiences.
"""

from __future__ import annotations

import numpy as np


class ScenarioError(ValueError):
    """A scenario that cannot be built: an unknown name, a bad split, labels or file (the CLI says why)."""


class LabelError(ScenarioError):
    """The labels of a data set cannot make a class-incremental benchmark."""


def _listing(labels, counts) -> str:
    """e.g. "12 (1 image), 13 (4 images)"."""
    return ", ".join(f"{int(l)} ({int(n)} image{'s' if n != 1 else ''})" for l, n in zip(labels, counts))


def _ids(ids) -> str:
    return ", ".join(str(int(i)) for i in ids)


MAX_CLASSES = 100_000  # far above any benchmark; labels beyond it are named before anything allocates by them


def _missing(labels: np.ndarray, limit: int = 10) -> tuple[list[int], int]:
    """Up to ``limit`` of the ids 0..max(labels) that ``labels`` (sorted, unique, ≥ 0) lacks, and how
    many it lacks in all, without allocating by the largest label."""
    top = int(labels[-1])
    total = top + 1 - len(labels)
    found, expected = [], 0
    for label in labels.tolist():
        while expected < label and len(found) < limit:
            found.append(expected)
            expected += 1
        if len(found) >= limit:
            break
        expected = label + 1
    return found, total


def check_labels(source: str, y_train: np.ndarray, y_test: np.ndarray, n_experiences: int,
                 eval_name: str = "y_test", first_classes: int | None = None) -> int:
    """The number of classes K, after checking the labels; :class:`LabelError` says what is wrong.
    ``eval_name`` names the evaluation labels in the messages (the test set, or a validation split);
    ``first_classes``: a warm start, N classes in the first experience and the rest split evenly."""
    for name, y in (("y_train", y_train), (eval_name, y_test)):
        if len(y) == 0:
            raise LabelError(f"{source}: {name} is empty; the data set needs images of every class in both splits")
        labels, counts = np.unique(y, return_counts=True)
        if labels[0] < 0:
            negative = labels < 0
            raise LabelError(f"{source}: {name} has negative labels {_listing(labels[negative], counts[negative])}; "
                             f"class ids must be 0..K-1: remove or relabel those images")
        if int(labels[-1]) >= MAX_CLASSES:
            huge = labels >= MAX_CLASSES
            raise LabelError(f"{source}: {name} has labels {_listing(labels[huge][:5], counts[huge][:5])}; class ids "
                             f"must be 0..K-1 with K ≤ {MAX_CLASSES:,}: remove or relabel those images")
    train_labels, train_counts = np.unique(y_train, return_counts=True)
    n_classes = int(train_labels[-1]) + 1
    missing, n_missing = _missing(train_labels)
    if n_missing:
        stray = train_labels > missing[0]
        more = f" and {n_missing - len(missing):,} more" if n_missing > len(missing) else ""
        raise LabelError(
            f"{source}: y_train labels must be the contiguous class ids 0..K-1, but after 0..{missing[0] - 1} come "
            f"{_listing(train_labels[stray][:10], train_counts[stray][:10])} while {_ids(missing)}{more} never occur; "
            f"remove or relabel those images")
    test_labels, test_counts = np.unique(y_test, return_counts=True)
    unknown = ~np.isin(test_labels, train_labels)
    if unknown.any():
        raise LabelError(f"{source}: {eval_name} has labels that y_train lacks: "
                         f"{_listing(test_labels[unknown], test_counts[unknown])}; every test class needs training "
                         f"images: remove or relabel those test images")
    untested = ~np.isin(train_labels, test_labels)
    if untested.any():
        raise LabelError(f"{source}: {eval_name} has no images of these classes of y_train: "
                         f"{_listing(train_labels[untested], train_counts[untested])}; every class needs test "
                         f"images to be scored: add test images or remove those training images")
    if first_classes is not None:
        rest, later = n_classes - first_classes, n_experiences - 1
        if not 0 < first_classes < n_classes or later < 1 or rest % later:
            fits = [str(n) for n in range(1, n_classes) if later >= 1 and (n_classes - n) % later == 0]
            raise LabelError(f"{source}: a first experience of {first_classes} of its {n_classes} classes leaves "
                             f"{rest} for {later} more experience{'s' if later != 1 else ''}, which do not split "
                             f"evenly; choose --first-experience-classes from {', '.join(fits) or 'none'} or another "
                             f"--n-experiences")
        return n_classes
    if n_classes % n_experiences:
        divisors = [str(d) for d in range(1, n_classes + 1) if n_classes % d == 0]
        rare = train_counts < 0.1 * np.median(train_counts)
        hint = (f" (suspiciously rare in y_train: {_listing(train_labels[rare], train_counts[rare])}; "
                f"a stray label?)" if rare.any() else "")
        raise LabelError(f"{source}: its {n_classes} classes (0..{n_classes - 1}) cannot be split evenly into "
                         f"{n_experiences} experiences{hint}; choose --n-experiences from {', '.join(divisors)}")
    return n_classes


def check_class_order(class_order, n_classes: int) -> list[int] | None:
    if class_order is None:
        return None
    class_order = [int(c) for c in class_order]
    if sorted(class_order) != list(range(n_classes)):
        raise LabelError(f"--class-order must be a permutation of 0..{n_classes - 1}, got {' '.join(map(str, class_order))}")
    return class_order
