"""The CTRL / i-CTRL rate-reduction game: its terms and the two players' objectives.

Z = f(X), Ẑ = f(g(Z)); Ẑ carries the labels of the Z it came from.

    T(Z, Ẑ, y) = ΔR(Z | y) + ΔR(Ẑ | y) + Σ_j ΔR(Z_j, Ẑ_j)           (CTRL-Multi)

i-CTRL splits the last sum into the classes of the current experience ("new") and the
classes held in memory ("old"):

    encoder maximises  ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) − C(Σ_old ΔR(Z_j, Ẑ_j))
    decoder minimises  ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) + C(Σ_old ΔR(Z_j, Ẑ_j))

where C(c) = γ·c for the fixed penalty of the paper, or μ·c + ρ/2·c² for the augmented
Lagrangian. All terms come from one batched Cholesky over 3P + 2 matrices of size d × d, P the classes
with rows in the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .rate import class_grams, half_logdet_identity_plus


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

    With G_j = Z_jᵀZ_j, Ĝ_j = Ẑ_jᵀẐ_j and R(G, m) = ½ logdet(I + d/(m ε²) G):
    ΔR(Z|y) = R(Σ_j G_j, n) − Σ_j (n_j/n) R(G_j, n_j), likewise for Ẑ, and
    ΔR(Z_j, Ẑ_j) = R(G_j + Ĝ_j, 2 n_j) − ½ (R(G_j, n_j) + R(Ĝ_j, n_j)).  ``eps2`` is ε².

    Only the P classes present in ``y`` are factorised (a class without rows adds 0 to every term),
    so a step's cost follows the classes in its batch, not the ``num_classes`` ids of the scenario.
    """
    n, d = Z.shape
    present, rows = torch.unique(y, return_inverse=True)  # sorted ids; each row's index among them
    grams_z, counts = class_grams(Z, rows, len(present))
    grams_zhat, _ = class_grams(Zhat, rows, len(present))
    per_class = d / (counts * eps2)
    whole = torch.full((2,), d / (n * eps2), dtype=per_class.dtype, device=per_class.device)
    half_logdets = half_logdet_identity_plus(
        torch.cat([grams_z.sum(0, keepdim=True), grams_zhat.sum(0, keepdim=True),
                   grams_z, grams_zhat, grams_z + grams_zhat]),
        torch.cat([whole, per_class, per_class, per_class / 2]),
        "ctrl game",
    )
    P = len(present)
    rate_z, rate_zhat = half_logdets[0], half_logdets[1]
    class_rate_z, class_rate_zhat = half_logdets[2:2 + P], half_logdets[2 + P:2 + 2 * P]
    union_rate = half_logdets[2 + 2 * P:]

    def by_class(values: Tensor) -> Tensor:  # present classes' values at their ids, 0 elsewhere
        return values.new_zeros(num_classes).index_put((present,), values)

    weights = by_class(counts) / n
    return GameTerms(
        rate_reduction_z=rate_z - (weights * by_class(class_rate_z)).sum(),
        rate_reduction_zhat=rate_zhat - (weights * by_class(class_rate_zhat)).sum(),
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
