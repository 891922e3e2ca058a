"""Drift compensation: an old class's statistics follow the linear map of f's drift fitted on images
seen before and after (drift_map, LDC in closed form)."""

import torch

from ctrl_bench.memory import FeatureMemory, drift_map


def test_the_drift_map_recovers_a_linear_drift_and_a_strong_ridge_keeps_the_identity():
    torch.manual_seed(0)
    Z_before = torch.randn(200, 6)
    M = torch.eye(6) + 0.3 * torch.randn(6, 6)
    torch.testing.assert_close(drift_map(Z_before, Z_before @ M, ridge=1e-6), M, atol=1e-5, rtol=0)
    torch.testing.assert_close(drift_map(Z_before, Z_before @ M, ridge=1e9), torch.eye(6), atol=1e-5, rtol=0)
    # the normal equations of ‖ZW − Z'‖² + λ‖W − I‖² hold at a moderate λ
    Z, Zp = Z_before.double(), (Z_before @ M + 0.1 * torch.randn(200, 6)).double()
    W = drift_map(Z, Zp, ridge=5.0)
    torch.testing.assert_close(Z.T @ (Z @ W - Zp) + 5.0 * (W - torch.eye(6, dtype=torch.float64)),
                               torch.zeros(6, 6, dtype=torch.float64), atol=1e-8, rtol=0)


def test_mapping_a_memory_moves_the_named_classes_statistics_as_their_features_would_move():
    torch.manual_seed(0)
    memory = FeatureMemory(n_directions=2, n_prototypes=4)
    y = torch.arange(3).repeat_interleave(40)
    scales = torch.tensor([3.0, 1.0, 0.1, 0.1, 0.1, 0.1])  # each class spreads mostly along two axes
    Z = torch.randn(120, 6) * scales + torch.randn(3, 6).repeat_interleave(40, 0)
    memory.store(Z, y)
    # a rotation and a scaling: the stored statistics of the mapped features, the spread off the subspace included
    W = 2.0 * torch.linalg.qr(torch.randn(6, 6))[0]
    expected = FeatureMemory(n_directions=2, n_prototypes=4)
    expected.store(Z @ W, y)
    before = memory.means.clone(), memory.directions.clone(), memory.variances.clone(), memory.residuals.clone()
    memory.map_classes(torch.tensor([1, 2]), W)
    torch.testing.assert_close(memory.means[1:], expected.means[1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(memory.variances[1:], expected.variances[1:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(memory.residuals[1:], expected.residuals[1:], atol=1e-5, rtol=1e-4)
    # directions up to sign: |⟨u, u'⟩| = 1
    torch.testing.assert_close((memory.directions[1:] * expected.directions[1:]).sum(-1).abs(),
                               torch.ones(2, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(memory.means[0], before[0][0])  # class 0 is not named
    torch.testing.assert_close(memory.directions[0], before[1][0])
    torch.testing.assert_close(memory.variances[0], before[2][0])
    torch.testing.assert_close(memory.residuals[0], before[3][0])
