import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctrl_bench import (NonFiniteRateError, class_coding_rate, coding_rate, game_terms, pairwise_rate_reduction,
                        rate_reduction)
from ctrl_bench.rate import class_blocks, half_logdets_of_rows


def sphere(n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def np_rate(Z, eps2):
    n, d = Z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * eps2) * Z.T @ Z)[1]


def np_class_rate(Z, y, eps2):
    return sum((y == c).sum() / len(y) * np_rate(Z[y == c], eps2) for c in np.unique(y))


@pytest.mark.parametrize("eps2", [0.5, 1.0])
def test_values_match_numpy(eps2):
    Z, y = sphere(90, 16), torch.arange(90) % 3
    Zn, yn = Z.numpy(), y.numpy()
    assert coding_rate(Z, eps2).item() == pytest.approx(np_rate(Zn, eps2), rel=1e-10)
    assert class_coding_rate(Z, y, eps2).item() == pytest.approx(np_class_rate(Zn, yn, eps2), rel=1e-10)
    assert rate_reduction(Z, y, eps2).item() == pytest.approx(np_rate(Zn, eps2) - np_class_rate(Zn, yn, eps2), rel=1e-9)
    A, B = Zn[:40], Zn[40:]
    expected = np_rate(np.concatenate([A, B]), eps2) - 0.5 * (np_rate(A, eps2) + np_rate(B, eps2))
    assert pairwise_rate_reduction(Z[:40], Z[40:], eps2).item() == pytest.approx(expected, rel=1e-9)


def test_absent_class_contributes_nothing():
    Z, y = sphere(60, 8), torch.arange(60) % 2 * 2  # classes 0 and 2, class 1 absent
    assert class_coding_rate(Z, y, 1.0, num_classes=5).item() == pytest.approx(
        np_class_rate(Z.numpy(), y.numpy(), 1.0), rel=1e-10)


def test_rate_reduction_nonnegative_and_pairwise_zero_for_identical_sets():
    for seed in range(5):
        Z, y = sphere(64, 12, seed), torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(seed))
        assert rate_reduction(Z, y, 1.0).item() >= -1e-12
        assert pairwise_rate_reduction(Z[:30], Z[30:], 1.0).item() >= -1e-12
        assert pairwise_rate_reduction(Z, Z.clone(), 1.0).item() == pytest.approx(0.0, abs=1e-12)


def test_rates_invariant_to_rotation():
    Z, y = sphere(80, 10), torch.arange(80) % 4
    Q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    for fn in (lambda Z: coding_rate(Z, 0.5), lambda Z: rate_reduction(Z, y, 0.5),
               lambda Z: pairwise_rate_reduction(Z[:50], Z[50:], 0.5)):
        assert fn(Z @ Q).item() == pytest.approx(fn(Z).item(), rel=1e-10)


def test_orthogonal_subspaces_beat_one_shared_subspace():
    g = torch.Generator().manual_seed(0)
    d, k, per = 12, 3, 50
    y = torch.arange(4).repeat_interleave(per)
    coeff = torch.randn(4 * per, k, generator=g, dtype=torch.float64)
    orthogonal = torch.zeros(4 * per, d, dtype=torch.float64)
    for c in range(4):
        orthogonal[y == c, c * k:(c + 1) * k] = coeff[y == c]
    shared = torch.zeros(4 * per, d, dtype=torch.float64)
    shared[:, :k] = coeff
    orthogonal, shared = F.normalize(orthogonal, dim=1), F.normalize(shared, dim=1)
    assert rate_reduction(orthogonal, y, 0.5) > rate_reduction(shared, y, 0.5) + 1.0


def test_gradients_finite_and_float32_agrees_with_float64():
    Z64, y = sphere(100, 32), torch.arange(100) % 5
    Z32 = Z64.float().requires_grad_()
    loss = rate_reduction(Z32, y, 0.5) + pairwise_rate_reduction(Z32[:50], Z32[50:], 0.5)
    loss.backward()
    assert torch.isfinite(Z32.grad).all() and Z32.grad.abs().sum() > 0
    assert loss.dtype == torch.float32
    ref = rate_reduction(Z64, y, 0.5) + pairwise_rate_reduction(Z64[:50], Z64[50:], 0.5)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)


def test_half_precision_inputs_are_promoted():
    Z, y = sphere(64, 16, dtype=torch.float32), torch.arange(64) % 2
    for dtype in (torch.float16, torch.bfloat16):
        value = rate_reduction(Z.to(dtype), y, 1.0)
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(rate_reduction(Z.to(dtype).float(), y, 1.0).item(), rel=1e-5)


def test_non_finite_raises_with_term_name():
    Z = sphere(20, 4)
    Z[3, 1] = float("nan")
    with pytest.raises(NonFiniteRateError, match="coding_rate"):
        coding_rate(Z, 1.0)
    with pytest.raises(NonFiniteRateError, match="class_coding_rate"):
        class_coding_rate(Z, torch.arange(20) % 2, 1.0)


def test_game_terms_match_the_public_functions():
    Z, Zhat, y = sphere(60, 8, 0), sphere(60, 8, 1), torch.arange(60) % 3
    terms = game_terms(Z, Zhat, y, num_classes=4, eps2=0.5)
    assert terms.rate_reduction_z.item() == pytest.approx(rate_reduction(Z, y, 0.5).item(), rel=1e-10)
    assert terms.rate_reduction_zhat.item() == pytest.approx(rate_reduction(Zhat, y, 0.5).item(), rel=1e-10)
    for c in range(3):
        expected = pairwise_rate_reduction(Z[y == c], Zhat[y == c], 0.5).item()
        assert terms.pairwise[c].item() == pytest.approx(expected, rel=1e-9)
    assert terms.pairwise[3].item() == 0.0  # absent class


def test_class_blocks_are_each_class_rows():
    Z, y = sphere(50, 6), torch.tensor([4, 0, 4, 2] * 12 + [0, 2])  # ids 1 and 3 absent
    blocks, counts = class_blocks(Z, y, 5)
    for c in range(5):
        assert torch.equal(blocks[c], Z[y == c])
        assert counts[c] == (y == c).sum()
    with pytest.raises(ValueError, match="beyond the 4 class ids"):
        class_blocks(Z, y, 4)


def test_row_form_log_determinants_equal_the_d_by_d_ones_with_their_gradients():
    """Sylvester's identity: sets of 1, 3, 5, 9, 16, 17 and 40 rows in d = 32 (row forms padded to
    1, 4, 8, 16, 16; the d × d form from 17 rows up) give ½ logdet(I_d + s AᵀA) and its gradient."""
    d = 32
    blocks = [sphere(n, d, seed).requires_grad_() for seed, n in enumerate([1, 3, 5, 9, 16, 17, 40, 0])]
    scales = torch.tensor([0.5, 2.0, 3.0, 1.0, 7.0, 0.25, 4.0, 1.0], dtype=torch.float64)
    values = half_logdets_of_rows(blocks, scales)
    direct = torch.stack([0.5 * torch.logdet(torch.eye(d, dtype=torch.float64) + s * A.T @ A)
                          for A, s in zip(blocks, scales)])
    assert torch.allclose(values, direct, rtol=1e-12, atol=1e-12)
    assert values[-1] == 0  # a set without rows
    weights = torch.arange(1.0, 9.0, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((weights * values).sum(), blocks[:-1]),
                    torch.autograd.grad((weights * direct).sum(), blocks[:-1])):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_game_terms_and_their_gradients_ignore_ids_without_rows():
    """The classes present are factorised alone: spreading the same labels over more ids (most of
    them without rows) changes neither the terms nor their gradients."""
    Z, Zhat = sphere(48, 8, 0).requires_grad_(), sphere(48, 8, 1).requires_grad_()
    y = torch.arange(48) % 3
    spread = torch.tensor([7, 2, 11])[y]  # the same three classes as ids 7, 2 and 11 of 12

    def terms_and_gradients(labels, num_classes, ids):
        terms = game_terms(Z, Zhat, labels, num_classes, 0.5)
        total = terms.rate_reduction_z + terms.rate_reduction_zhat + (terms.pairwise[ids] * torch.tensor([1., 2., 3.],
                                                                       dtype=torch.float64)).sum()
        return [terms.rate_reduction_z, terms.rate_reduction_zhat, terms.pairwise[ids],
                *torch.autograd.grad(total, [Z, Zhat])], terms.pairwise

    compact, _ = terms_and_gradients(y, 3, [0, 1, 2])
    wide, pairwise = terms_and_gradients(spread, 12, [7, 2, 11])
    for a, b in zip(compact, wide):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert (pairwise[[0, 1, 3, 4, 5, 6, 8, 9, 10]] == 0).all()
