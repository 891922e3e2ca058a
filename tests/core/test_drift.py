"""Semantic drift compensation (SDC): an old class's stored mean follows the drift of the new images
whose start-of-experience features lie near it."""

import torch

from ctrl_bench.memory import FeatureMemory, semantic_drift


def test_a_uniform_shift_moves_every_class_by_it():
    torch.manual_seed(0)
    Z_before = torch.randn(50, 8)
    shift = torch.randn(8)
    means = torch.randn(3, 8)
    drift = semantic_drift(Z_before, Z_before + shift, means, sigma=0.5)
    torch.testing.assert_close(drift, shift.expand(3, 8))


def test_each_class_follows_the_images_near_it():
    Z_before = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    moves = torch.tensor([[0.0, 0.2], [-0.3, 0.0]])
    means = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    drift = semantic_drift(Z_before, Z_before + moves, means, sigma=0.1)
    torch.testing.assert_close(drift, moves, atol=1e-6, rtol=0)
    # a wide kernel averages the two moves for both classes
    wide = semantic_drift(Z_before, Z_before + moves, means, sigma=100.0)
    torch.testing.assert_close(wide, moves.mean(0).expand(2, 2), atol=1e-4, rtol=0)


def test_shifting_a_memory_moves_only_the_named_means():
    memory = FeatureMemory(n_directions=2, n_prototypes=4)
    Z = torch.nn.functional.normalize(torch.randn(30, 6), dim=1)
    memory.store(Z, torch.arange(3).repeat_interleave(10))
    before = memory.means.clone(), memory.directions.clone()
    memory.shift_means(torch.tensor([2]), torch.ones(1, 6))
    torch.testing.assert_close(memory.means[2], before[0][2] + 1)
    torch.testing.assert_close(memory.means[:2], before[0][:2])
    torch.testing.assert_close(memory.directions, before[1])
