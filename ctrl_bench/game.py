"""The CTRL / i-CTRL rate-reduction game: its terms and the two players' objectives.

Z = f(X), Ẑ = f(g(Z)); Ẑ carries the labels of the Z it came from.

    T(Z, Ẑ, y) = ΔR(Z | y) + ΔR(Ẑ | y) + Σ_j ΔR(Z_j, Ẑ_j)           (CTRL-Multi)

i-CTRL splits the last sum into the classes of the current experience ("new") and the
classes held in memory ("old"):

    encoder maximises  ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) − C(Σ_old ΔR(Z_j, Ẑ_j))
    decoder minimises  ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) + C(Σ_old ΔR(Z_j, Ẑ_j))

where C(c) = γ·c for the fixed penalty of the paper, or μ·c + ρ/2·c² for the augmented
Lagrangian. The terms take 3P + 2 log-determinants, P the classes with rows in the step, each a
Cholesky factor of a d × d matrix or, for a class with fewer rows, of its row Gram (Sylvester's identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .rate import class_blocks, half_logdets_of_rows


@dataclass
class GameTerms:
    """Rate terms of one step. ``pairwise`` holds ΔR(Z_j, Ẑ_j) for every class j (0 if absent)."""

    rate_reduction_z: Tensor
    rate_reduction_zhat: Tensor
    pairwise: Tensor

    def pairwise_sum(self, mask: Tensor) -> Tensor:
        """Σ_{j : mask_j} ΔR(Z_j, Ẑ_j)."""
        return (self.pairwise * mask.to(self.pairwise.dtype)).sum()


def game_terms(Z: Tensor, Zhat: Tensor, y: Tensor, num_classes: int, eps2: float) -> GameTerms:
    """ΔR(Z|y), ΔR(Ẑ|y) and the per-class ΔR(Z_j, Ẑ_j) for paired features ``Z``, ``Ẑ`` (n, d).

    With R(A, m) = ½ logdet(I + d/(m ε²) AᵀA) for a set of rows A:
    ΔR(Z|y) = R(Z, n) − Σ_j (n_j/n) R(Z_j, n_j), likewise for Ẑ, and
    ΔR(Z_j, Ẑ_j) = R([Z_j; Ẑ_j], 2 n_j) − ½ (R(Z_j, n_j) + R(Ẑ_j, n_j)).  ``eps2`` is ε².

    Only the P classes present in ``y`` are factorised (a class without rows adds 0 to every term),
    and a class with few rows in its row form (:func:`ctrl_bench.rate.half_logdets_of_rows`), so a
    step's cost follows its rows, not the number of classes. Z's own terms are one call apart from
    the rest, so that ΔR(Z|y) back-propagates into Z alone.
    """
    n, d = Z.shape
    present, rows = torch.unique(y, return_inverse=True)  # sorted ids; each row's index among them
    blocks_z, counts = class_blocks(Z, rows, len(present))
    blocks_zhat, _ = class_blocks(Zhat, rows, len(present))
    per_class = d / (counts.double() * eps2)
    whole = per_class.new_full((1,), d / (n * eps2))
    rates_z = half_logdets_of_rows([Z, *blocks_z], torch.cat([whole, per_class]), "ctrl game")
    unions = [torch.cat(pair) for pair in zip(blocks_z, blocks_zhat)]
    rates_zhat = half_logdets_of_rows([Zhat, *blocks_zhat, *unions], torch.cat([whole, per_class, per_class / 2]),
                                      "ctrl game")
    P = len(present)
    class_rate_z, class_rate_zhat, union_rate = rates_z[1:], rates_zhat[1:1 + P], rates_zhat[1 + P:]

    def by_class(values: Tensor) -> Tensor:  # present classes' values at their ids, 0 elsewhere
        return values.new_zeros(num_classes).index_put((present.to(values.device),), values)

    weights = by_class(counts.to(rates_z.dtype)) / n
    return GameTerms(
        rate_reduction_z=rates_z[0] - (weights * by_class(class_rate_z)).sum(),
        rate_reduction_zhat=rates_zhat[0] - (weights * by_class(class_rate_zhat)).sum(),
        pairwise=by_class(union_rate - 0.5 * (class_rate_z + class_rate_zhat)),
    )


def shared_objective(terms: GameTerms, new_classes: Tensor, new_weight: float) -> Tensor:
    """S = ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j): the part both players share (encoder max, decoder min)."""
    return terms.rate_reduction_z + terms.rate_reduction_zhat + new_weight * terms.pairwise_sum(new_classes)


def constraint_penalty(violation: Tensor, multiplier: float, rho: float) -> Tensor:
    """C(c) = μ·c + ρ/2·c². With ρ = 0 and μ = γ this is the paper's fixed penalty γ·c.

    ``violation`` is c = Σ_old ΔR(Z_j, Ẑ_j) ≥ 0; the constraint is c = 0.
    """
    return multiplier * violation + 0.5 * rho * violation**2
