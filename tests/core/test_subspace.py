import math

import pytest
import torch

from ctrl_bench.subspace import NearestSubspaceClassifier, ppca_log_likelihood, principal_subspace


def test_principal_subspace_recovers_directions_and_variances():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(6, 6))[0].T  # orthonormal rows
    Z = 3.0 + torch.randn(20000, 2) * torch.tensor([2.0, 0.5]) @ basis[:2]
    mean, directions, variances = principal_subspace(Z, 3)
    assert torch.allclose(mean, torch.full((6,), 3.0), atol=0.05)
    assert torch.allclose(variances, torch.tensor([4.0, 0.25, 0.0]), atol=0.1)
    assert torch.allclose((directions[:2] @ basis[:2].T).abs(), torch.eye(2), atol=0.01)


def test_ppca_log_likelihood_is_the_gaussian_density():
    torch.manual_seed(0)
    d, k, noise = 5, 2, 0.3
    bases = torch.linalg.qr(torch.randn(d, d))[0].T[None, :k]  # (1, k, d)
    means, variances = torch.randn(1, d), torch.tensor([[2.0, 0.7]])
    U = bases[0]
    covariance = U.T @ torch.diag(variances[0] + noise) @ U + noise * (torch.eye(d) - U.T @ U)
    Z = torch.randn(7, d)
    expected = torch.distributions.MultivariateNormal(means[0], covariance).log_prob(Z) + d / 2 * math.log(2 * math.pi)
    assert torch.allclose(ppca_log_likelihood(Z, means, bases, variances, noise)[:, 0], expected, atol=1e-4)


def test_likelihood_tells_a_tight_class_from_a_broad_one_on_the_same_line():
    line = torch.tensor([[[1.0, 0.0]]])
    labels, means, bases = torch.tensor([0, 1]), torch.zeros(2, 2), line.expand(2, 1, 2)
    variances = torch.tensor([[0.01], [1.0]])
    Z = torch.tensor([[0.05, 0.0], [2.0, 0.0]])  # near the centre: the tight class; far along: the broad one
    subspace, gaussian = NearestSubspaceClassifier(), NearestSubspaceClassifier(noise=0.01)
    subspace.set_subspaces(labels, means, bases)
    gaussian.set_subspaces(labels, means, bases, variances)
    assert torch.equal(subspace.scores(Z, 2)[:, 0], subspace.scores(Z, 2)[:, 1])  # residuals tie
    assert gaussian.scores(Z, 2).argmax(1).tolist() == [0, 1]


def test_nearest_subspace_picks_the_subspace_a_point_lies_on():
    classifier = NearestSubspaceClassifier()
    classifier.set_subspaces(torch.tensor([3, 7]), torch.zeros(2, 3), torch.stack([torch.eye(3)[:1], torch.eye(3)[1:2]]))
    scores = classifier.scores(torch.tensor([[5.0, 0.1, 0.0], [0.2, -4.0, 0.1]]), num_classes=8)
    assert scores.argmax(1).tolist() == [3, 7]
    assert (scores[:, [0, 1, 2, 4, 5, 6]] < -1e3).all()  # unseen classes never win


def test_a_noisy_classifier_needs_variances():
    with pytest.raises(ValueError, match="variances"):
        NearestSubspaceClassifier(noise=0.1).set_subspaces(torch.tensor([0]), torch.zeros(1, 2), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="≥ 0"):
        NearestSubspaceClassifier(noise=-1.0)
