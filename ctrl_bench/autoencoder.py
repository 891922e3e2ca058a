"""``build_autoencoder``: the one public factory for the encoder f and decoder g."""

from __future__ import annotations

from torch import nn

from .conv import ConvDecoder, ConvEncoder, dcgan_init
from .crate import CrateDecoder, CrateEncoder

MIN_CONV_SIDE = 8  # the conv pair resizes any image to 32 × 32; below 8 pixels there is nothing to resize
# CRATE: token width d, layers, heads, and either the patch side or ``grid`` (patches per image
# side, patch = H / grid). "base" is the d = 256, 6-layer model.
CRATE_SIZES = {
    "tiny": dict(dim=64, depth=2, heads=2, grid=4),
    "small": dict(dim=128, depth=4, heads=4, patch=4),
    "base": dict(dim=256, depth=6, heads=4, patch=4),
}
# DCGAN pair: base width w (encoder w, 2w, 4w; decoder 8w, 4w, 2w). "base" is the papers' w = 64.
CONV_SIZES = {"tiny": dict(width=16), "small": dict(width=32), "base": dict(width=64)}

ARCHS = {"crate": (CrateEncoder, CrateDecoder, CRATE_SIZES), "conv": (ConvEncoder, ConvDecoder, CONV_SIZES)}


INITS = ("default", "dcgan")


def check_image_shape(arch: str, size: str, image_shape) -> None:
    """ValueError, saying what fits, when the ``arch`` networks at ``size`` cannot take (C, H, W) images.

    CRATE cuts an image into patches: ``tiny`` into a 4 × 4 grid (patch H / 4), ``small`` and
    ``base`` into 4 × 4-pixel patches, so the image must be square with a side divisible by 4. The
    conv pair resizes any image of at least 8 × 8 pixels to its native 32 × 32."""
    C, H, W = (int(s) for s in image_shape)
    if arch == "crate":
        config = CRATE_SIZES[size]
        how = (f"into a {config['grid']} × {config['grid']} grid of patches" if "grid" in config
               else f"into {config['patch']} × {config['patch']} patches")
        if H != W or H % 4 or H < 4:
            fits = 4 * max(1, -(-max(H, W) // 4))
            raise ValueError(f"CRATE {size} cuts images {how}: {H} × {W} does not divide; pad to {fits} × {fits} "
                             f"or use --backbone conv")
    elif arch == "conv":
        if min(H, W) < MIN_CONV_SIDE:
            raise ValueError(f"the conv pair takes images of at least {MIN_CONV_SIDE} × {MIN_CONV_SIDE} pixels "
                             f"(it resizes them to 32 × 32), not {H} × {W}")
    if C < 1:
        raise ValueError(f"images need at least one channel, got shape {tuple(image_shape)}")


def build_autoencoder(arch: str, image_shape, feature_dim: int = 128, size: str = "small",
                      init: str = "default") -> tuple[nn.Module, nn.Module]:
    """Return ``(f, g)``: f maps (B, C, H, W) images in [−1, 1] to (B, feature_dim) unit vectors,
    g maps (B, feature_dim) features back to (B, C, H, W) images in [−1, 1].

    ``arch``: "crate" (CRATE encoder, CRATE-AE decoder) or "conv" (the papers' DCGAN pair);
    ``size``: "tiny", "small" or "base"; ``image_shape``: (C, H, W), see :func:`check_image_shape`;
    ``init``: "default" (PyTorch's) or "dcgan" (the reference code's, conv only).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; supported: {', '.join(ARCHS)}")
    encoder_cls, decoder_cls, sizes = ARCHS[arch]
    if size not in sizes:
        raise ValueError(f"unknown size {size!r} for arch {arch!r}; supported: {', '.join(sizes)}")
    image_shape = tuple(int(s) for s in image_shape)
    check_image_shape(arch, size, image_shape)
    if init not in INITS or (init == "dcgan" and arch != "conv"):
        raise ValueError(f"unknown init {init!r} for arch {arch!r}; supported: default"
                         + (", dcgan" if arch == "conv" else ""))
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive, got {feature_dim}")
    config = dict(sizes[size])
    if "grid" in config:
        config["patch"] = image_shape[1] // config.pop("grid")
    encoder, decoder = encoder_cls(image_shape, feature_dim, **config), decoder_cls(image_shape, feature_dim, **config)
    if init == "dcgan":
        encoder.apply(dcgan_init)
        decoder.apply(dcgan_init)
    return encoder, decoder
