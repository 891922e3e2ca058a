"""Rate-reduction (MCR²) quantities.

Conventions used throughout:

* Features are **rows**: ``Z`` has shape ``(n, d)``; rows are expected on the unit sphere.
* ``eps2`` is ε², exactly as the official CTRL / i-CTRL code (``EPS``) plugs it in:
  the scale of an ``n``-sample set is ``d / (n · eps2)``.
* Every log-determinant logdet(I_d + scale · ZᵀZ) is taken through a Cholesky factor
  (``logdet = 2 Σ log diag L``), in at least float32 and outside autocast; a set of at most d/2
  rows is factorised in its row form I_n + scale · Z Zᵀ (Sylvester's identity, :func:`half_logdets_of_rows`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as nn_functional


class NonFiniteRateError(FloatingPointError):
    """A rate term came out NaN or infinite (usually: unnormalised or NaN features)."""


def _rate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (half, bfloat16, float32) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def half_logdet_identity_plus(gram: Tensor, scale: Tensor | float, term: str = "rate") -> Tensor:
    """½ · logdet(I + scale · G) for one ``(d, d)`` or a batch ``(..., d, d)`` of PSD matrices G.

    ``scale`` broadcasts against the batch dimensions. One batched Cholesky, no loop.
    Raises :class:`NonFiniteRateError` naming ``term`` if the result is not finite.
    """
    dtype = _rate_dtype(gram.dtype)
    with torch.autocast(device_type=gram.device.type, enabled=False):
        gram = gram.to(dtype)
        scale = torch.as_tensor(scale, dtype=dtype, device=gram.device)
        d = gram.shape[-1]
        eye = torch.eye(d, dtype=dtype, device=gram.device)
        matrix = eye + scale[..., None, None] * gram
        chol, info = torch.linalg.cholesky_ex(matrix)
        value = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    if not bool(torch.isfinite(value).all()) or bool((info != 0).any()):
        raise NonFiniteRateError(
            f"{term}: log-determinant is not finite; check that features are finite and "
            "L2-normalised (rows on the unit sphere)"
        )
    return value  # ½ · 2 Σ log diag L


def _as_rate_input(Z: Tensor) -> Tensor:
    if Z.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) tensor, got shape {tuple(Z.shape)}")
    return Z.to(_rate_dtype(Z.dtype))


def _row_form_size(n: int, d: int) -> int:
    """The size a set of ``n`` rows is factorised at: d (the d × d form) where n > d/2, else the
    row form padded to the next power of two, so that sets of similar size share one batched call."""
    return d if 2 * n > d else 1 << max(n - 1, 0).bit_length()


def half_logdets_of_rows(blocks: list[Tensor], scales: Tensor, term: str = "rate") -> Tensor:
    """½ · logdet(I_d + s_i B_iᵀ B_i) for each row block B_i of shape (n_i, d), a value each (0 for n_i = 0).

    Sylvester's determinant identity, det(I_d + s BᵀB) = det(I_n + s B Bᵀ), gives the same value from
    the n_i × n_i row Gram: a block of n_i ≤ d/2 rows is factorised in that form, padded with zero rows
    to the next power of two (a zero row adds a row of the identity: the determinant is unchanged), the
    others as d × d. Blocks of one size share one batched Cholesky. A class with a few replayed rows
    thus costs a few rows' worth, and a step's cost does not grow with the number of such classes.
    ``scales`` (one per block) is each s_i; every product is taken in at least float32 outside autocast.
    """
    if not blocks:
        return scales.new_zeros(0)
    d = blocks[0].shape[1]
    with torch.autocast(device_type=blocks[0].device.type, enabled=False):
        blocks = [_as_rate_input(b) for b in blocks]
        scales = torch.as_tensor(scales, dtype=blocks[0].dtype, device=blocks[0].device)
        groups: dict[int, list[int]] = {}
        for i, block in enumerate(blocks):
            if len(block):
                groups.setdefault(_row_form_size(len(block), d), []).append(i)
        values, order = [], []
        for size, members in sorted(groups.items()):
            if size == d:
                grams = torch.stack([blocks[i].T @ blocks[i] for i in members])
            else:
                rows = torch.stack([nn_functional.pad(blocks[i], (0, 0, 0, size - len(blocks[i]))) for i in members])
                grams = rows @ rows.transpose(1, 2)
            values.append(half_logdet_identity_plus(grams, scales[members], term))
            order += members
        result = scales.new_zeros(len(blocks))
        return result.index_put((torch.tensor(order, device=result.device),), torch.cat(values)) if order else result


def class_blocks(Z: Tensor, y: Tensor, num_classes: int) -> tuple[list[Tensor], Tensor]:
    """The rows of each class id 0 … ``num_classes`` − 1 (an id without rows: an empty block) and the
    counts n_j, from one stable sort of the rows by label."""
    counts = torch.bincount(y.long(), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"a label is {len(counts) - 1}, beyond the {num_classes} class ids")
    return list(Z[torch.argsort(y, stable=True)].split(counts.tolist())), counts


def coding_rate(Z: Tensor, eps2: float) -> Tensor:
    """R(Z) = ½ logdet(I_d + d/(n·ε²) ZᵀZ) for ``Z`` of shape ``(n, d)``; ``eps2`` is ε²."""
    n, d = _as_rate_input(Z).shape
    scale = torch.full((1,), d / (n * eps2), dtype=torch.float64, device=Z.device)
    return half_logdets_of_rows([Z], scale, "coding_rate")[0]


def class_coding_rate(Z: Tensor, y: Tensor, eps2: float, num_classes: int | None = None) -> Tensor:
    """R_c(Z | y) = Σ_j (n_j/n) · ½ logdet(I_d + d/(n_j·ε²) Z_jᵀZ_j).

    A class absent from ``y`` contributes 0. ``num_classes`` defaults to ``max(y) + 1``.
    """
    Z = _as_rate_input(Z)
    n, d = Z.shape
    K = int(y.max()) + 1 if num_classes is None else num_classes
    blocks, counts = class_blocks(Z, y, K)
    counts = counts.to(Z.dtype)
    rates = half_logdets_of_rows(blocks, d / (counts.clamp_min(1) * eps2), "class_coding_rate")
    return (counts / n * rates).sum()


def rate_reduction(Z: Tensor, y: Tensor, eps2: float, num_classes: int | None = None) -> Tensor:
    """ΔR(Z | y) = R(Z) − R_c(Z | y)  (≥ 0)."""
    return coding_rate(Z, eps2) - class_coding_rate(Z, y, eps2, num_classes)


def pairwise_rate_reduction(Z1: Tensor, Z2: Tensor, eps2: float) -> Tensor:
    """ΔR(Z1, Z2) = R([Z1; Z2]) − ½ (R(Z1) + R(Z2)); R([Z1; Z2]) uses n1 + n2 in its scale.

    Non-negative, and 0 when both sets have the same second moment (e.g. identical sets).
    """
    return coding_rate(torch.cat([Z1, Z2]), eps2) - 0.5 * (coding_rate(Z1, eps2) + coding_rate(Z2, eps2))
