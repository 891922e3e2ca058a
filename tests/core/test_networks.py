import pytest
import torch
import torch.nn.functional as F

from ctrl_bench import build_autoencoder, coding_rate
from ctrl_bench.crate import MSSA, CrateDecoderLayer, CrateEncoderLayer

SHAPES = [(1, 28, 28), (1, 32, 32), (3, 32, 32)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["crate", "conv"])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_unit_norm_and_range(arch, shape, device):
    torch.manual_seed(0)
    f, g = build_autoencoder(arch, shape, feature_dim=32, size="tiny")
    f, g = f.to(device), g.to(device)
    X = torch.rand(5, *shape, device=device) * 2 - 1
    Z = f(X)
    assert Z.shape == (5, 32)
    assert torch.allclose(Z.norm(dim=1), torch.ones(5, device=device), atol=1e-5)
    Xhat = g(Z)
    assert Xhat.shape == (5, *shape)
    assert Xhat.min() >= -1 and Xhat.max() <= 1
    assert Xhat.std() > 0


@pytest.mark.parametrize("size", ["small", "base"])
def test_larger_presets_build(size):
    f, g = build_autoencoder("crate", (3, 32, 32), size=size)
    assert f(torch.zeros(2, 3, 32, 32)).shape == (2, 128)


def test_unknown_options_raise_with_choices():
    with pytest.raises(ValueError, match="crate, conv"):
        build_autoencoder("resnet", (1, 28, 28))
    with pytest.raises(ValueError, match="tiny, small, base"):
        build_autoencoder("crate", (1, 28, 28), size="huge")
    with pytest.raises(ValueError, match="CRATE tiny cuts images into a 4 × 4 grid of patches: 30 × 30 does not divide"):
        build_autoencoder("crate", (1, 30, 30), size="tiny")
    with pytest.raises(ValueError, match="at least 8 × 8 pixels"):
        build_autoencoder("conv", (1, 4, 4))
    with pytest.raises(ValueError, match="supported: default"):
        build_autoencoder("crate", (1, 28, 28), init="dcgan")


def test_dcgan_initialisation_of_the_conv_pair():
    """The reference code's DCGAN start: conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0."""
    torch.manual_seed(0)
    for net in build_autoencoder("conv", (1, 28, 28), size="small", init="dcgan"):
        convs = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        weights = torch.cat([w.flatten() for w in convs])
        assert abs(weights.mean().item()) < 2e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
        assert all(torch.all(m.bias == 0) and abs(m.weight.mean().item() - 1) < 0.01 for m in norms)
    # PyTorch's default scales by the transposed layer's output channels: the one-channel output layer
    # starts several times wider than N(0, 0.02).
    default_decoder = build_autoencoder("conv", (1, 28, 28), size="small")[1]
    assert default_decoder.net[-2].weight.std().item() > 0.1


@pytest.mark.parametrize("layer_cls", [CrateEncoderLayer, CrateDecoderLayer])
@pytest.mark.parametrize("d", [64, 96])
def test_parameters_per_layer(layer_cls, d):
    assert sum(p.numel() for p in layer_cls(d, heads=4).parameters()) == 3 * d * d + 5 * d


def test_decoder_layer_subtracts_mssa():
    torch.manual_seed(0)
    layer = CrateDecoderLayer(16, heads=2)
    Z = torch.randn(2, 5, 16)
    linear = layer.linear(layer.norm_linear(Z))
    expected = linear - layer.mssa(layer.norm_mssa(linear))
    assert torch.allclose(layer(Z), expected)


def test_mssa_step_compresses_tokens_against_their_subspaces():
    """Tokens from a union of K p-dim subspaces: the MSSA step (the gradient step on
    Σ_k R(Z U_k) it is derived from, Z ← (1 − κ)Z + κ MSSA(Z)) lowers that coding rate."""
    g = torch.Generator().manual_seed(0)
    d, K, p, n = 32, 4, 8, 120
    bases = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:, :K * p]  # U = [U_1 … U_K]
    U = [bases[:, k * p:(k + 1) * p] for k in range(K)]
    labels = torch.arange(n) % K
    Z = torch.stack([U[c] @ torch.randn(p, generator=g) for c in labels.tolist()])
    Z = F.normalize(Z + 0.05 * torch.randn(n, d, generator=g), dim=1)
    mssa = MSSA(d, heads=K)
    with torch.no_grad():
        mssa.subspaces.weight.copy_(bases.T * 3.0)  # sharper attention within a subspace
        mssa.out.weight.copy_(bases / 3.0)
        mssa.out.bias.zero_()

    def rate_against_subspaces(Z):
        return sum(coding_rate(Z @ Uk, 0.5) for Uk in U)

    kappa = 0.5
    Z_next = (1 - kappa) * Z + kappa * mssa(Z[None])[0]
    assert rate_against_subspaces(Z_next) < rate_against_subspaces(Z) - 0.1


@pytest.mark.parametrize("arch", ["crate", "conv"])
def test_short_autoencoding_run_lowers_reconstruction_error(arch):
    torch.manual_seed(0)
    g_ = torch.Generator().manual_seed(1)
    # generated images: smooth blobs at random places
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    centres = torch.rand(32, 2, generator=g_) * 1.2 - 0.6
    X = (torch.exp(-((xx - centres[:, 0, None, None]) ** 2 + (yy - centres[:, 1, None, None]) ** 2) / 0.08) * 2 - 1)[:, None]
    f, g = build_autoencoder(arch, (1, 32, 32), feature_dim=32, size="tiny")
    opt = torch.optim.Adam(list(f.parameters()) + list(g.parameters()), lr=2e-3)
    losses = []
    for _ in range(60):
        loss = F.mse_loss(g(f(X)), X)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


@pytest.mark.parametrize("arch, shape", [("crate", (3, 28, 28)), ("crate", (3, 64, 64)), ("conv", (3, 64, 64)),
                                         ("conv", (1, 20, 20))])
def test_any_image_size_the_networks_can_cut_or_resize_round_trips(arch, shape):
    f, g = build_autoencoder(arch, shape, feature_dim=16, size="tiny")
    Z = f(torch.rand(2, *shape) * 2 - 1)
    assert Z.shape == (2, 16) and g(Z).shape == (2, *shape)


def test_patch_embedding_gives_the_convolution_numbers():
    """The CPU patch embedding (a faster input gradient) is Conv2d(kernel = stride = P), bit for bit:
    its output and the gradients of its input, weight and bias."""
    from ctrl_bench.crate import patch_embedding
    conv = torch.nn.Conv2d(3, 16, kernel_size=4, stride=4)
    X = torch.randn(5, 3, 12, 8, requires_grad=True)
    grad = torch.randn(5, 16, 3, 2)
    results = []
    for embed in (conv, lambda X: patch_embedding(X, conv)):
        out = embed(X)
        results.append([out, *torch.autograd.grad(out, [X, conv.weight, conv.bias], grad)])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(patch_embedding(X, conv), conv(X))
