"""One step of the i-CTRL game as a pure function: networks, a batch and the memory's replay in;
both players' losses and the step's terms out. No Avalanche, no strategy state: testable alone.

    Z_new = f(X_new)                                  with gradient; g's codes are its values
    X̂ = g([sg(Z_new); Z_old])                        sg: stop-gradient
    Ẑ, Z_M = f([X̂; X_M])                              one f call: decoded and anchor images
    (with BatchNorm in f: codes from a gradient-free f pass, then Z_new, Ẑ, Z_M = f([X_new; X̂; X_M]))
    T = game_terms([Z_new; Z_old], Ẑ)                 (:mod:`ctrl_bench.game`)
    encoder loss = C(Σ_old ΔR(Z_j, Ẑ_j)) − S [+ λ Σ_new ΔR(Z_j, Ẑ_j)] + w_a·drift(Z_M) + w_d·drift(Z_new)
    decoder loss = S + C(Σ_old ΔR(Z_j, Ẑ_j)) + w_p·pixel error

with S = ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j). The bracketed term is added unless the encoder
discriminates (the paper's game), which cancels the encoder's share of the new pairwise terms.
In the decoder's warm-up (``decoder_plays=False``) the decoder's loss is its pixel error alone, and
with ``warmup_encoder`` the encoder also pays w_p·‖g(Z_new) − X_new‖² through a second decode that
keeps f's gradient: with one class, S is zero, and this is all f learns before its statistics are kept.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..game import constraint_penalty, game_terms, shared_objective
from .config import ICTRLConfig


def full_precision(t: Tensor) -> Tensor:
    """float64 stays float64; reduced precision (bf16 under autocast) and float32 become float32."""
    return t if t.dtype == torch.float64 else t.float()


def cosine_drift(Z: Tensor, Z_before: Tensor) -> Tensor:
    """How far f has moved fixed images: mean_i (1 − ⟨z_i, b_i⟩), with z_i their features now and
    b_i = f_prev(x_i) under the encoder that started the experience (unit vectors). Used for the
    anchors (decoded old-class images) and, with ``distill_weight``, for the new batch."""
    return per_sample_drift(Z, Z_before).mean()


def per_sample_drift(Z: Tensor, Z_before: Tensor) -> Tensor:
    """1 − ⟨z_i, b_i⟩ for every row i (see :func:`cosine_drift`)."""
    return 1 - (full_precision(Z) * full_precision(Z_before)).sum(1)


def per_sample_pixel_error(X_hat: Tensor, X: Tensor) -> Tensor:
    """‖g(z_i) − x_i‖² / (C·H·W) for every image i (images in [−1, 1])."""
    return (full_precision(X_hat) - full_precision(X)).pow(2).flatten(1).mean(1)


def normalises_over_the_batch(encoder: nn.Module) -> bool:
    """Whether f has BatchNorm (the conv pair). Then real, decoded and anchor images go through f in
    one call, so that they share its batch statistics, and g's codes come from a gradient-free pass
    before it. Without (the CRATE pair), the new batch's own pass gives g its codes: one pass fewer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())


def principal_sign(Z: Tensor) -> Tensor:
    """Whether each row of ``Z`` lies on the positive side of the rows' first principal direction
    (through their mean): z_i ↦ ⟨z_i − z̄, v_1⟩ > 0, v_1 the top right singular vector of Z − z̄."""
    centred = Z.double() - Z.double().mean(0)
    return centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0] > 0


def split_halves(Z: Tensor, y: Tensor, second: int) -> Tensor:
    """The labels of one class's rows split in two halves (:func:`principal_sign`): the rows on the
    negative side get the label ``second``."""
    return torch.where(principal_sign(Z), y, torch.full_like(y, second))


def no_gather(t: Tensor) -> Tensor:
    """One process holds the whole batch: nothing to gather."""
    return t


@dataclass
class Replay:
    """The old classes' share of one step: memory codes Z_old (constants) and their labels, and, with
    anchors, the images X_M decoded from those codes at the start of the experience with their features
    f_prev(X_M) then."""

    codes: Tensor
    labels: Tensor
    images: Tensor | None = None
    targets: Tensor | None = None


@dataclass
class ClassMasks:
    """Which class ids are new (this experience's) and old (in memory), over ``num_classes`` ids."""

    new: Tensor
    old: Tensor

    @property
    def num_classes(self) -> int:
        return len(self.new)


@dataclass
class StepResult:
    """Both players' losses, the new batch's features Z_new and the step's terms (detached scalars)."""

    encoder_loss: Tensor
    decoder_loss: Tensor
    features: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def game_step(encoder: nn.Module, decoder: nn.Module, X: Tensor, y: Tensor, replay: Replay | None,
              masks: ClassMasks, config: ICTRLConfig, multiplier: float, *, rho: float = 0.0,
              previous_encoder: nn.Module | None = None, decoder_grad: bool = True, autocast=nullcontext,
              gather=no_gather, decoder_plays: bool = True, split_label: int | None = None) -> StepResult:
    """The losses of one step (see the module docstring). ``multiplier`` is μ (γ for the fixed
    penalty), ``rho`` the augmented Lagrangian's ρ (0: the fixed penalty). ``decoder_grad=False``
    decodes without gradient (the encoder's own move with alternating updates) and leaves out the pixel
    term. ``autocast`` is a context factory for the networks (bf16 on CUDA); the rate terms are
    computed in float32 or float64 whatever it is. ``split_label``: the class id of the second half of a
    lone class (:func:`split_halves`; its id in ``masks`` must be new). ``decoder_plays=False`` (the decoder's warm-up)
    leaves the decoder its pixel error alone (weighted by ``pixel_weight``, or 1 where that is 0).

    ``gather`` joins a per-process shard of rows into the rows of the global batch, with gradient
    (:func:`ctrl_bench.distributed.gather`): every rate term, mean and sum is then taken over
    the global batch, so that N processes, each with a shard of the batch and of the replay, compute
    the loss one process computes on all of it (the identity here: one process)."""
    joint = normalises_over_the_batch(encoder)
    with autocast():
        if joint:
            with torch.no_grad():
                codes = full_precision(encoder(X))
        else:
            Z_new = encoder(X)
            codes = full_precision(Z_new.detach())  # g's input: constants, as the codes of the replay are
    old_codes = None if replay is None else replay.codes
    decode = codes if replay is None else torch.cat([codes, old_codes])
    anchor_images = None if replay is None else replay.images
    n, n_codes = len(X), len(decode)
    hold_anchors = anchor_images is not None and bool(config.anchor_weight)
    with autocast():
        with torch.set_grad_enabled(decoder_grad):
            X_hat = decoder(decode)
        inputs = ([X] if joint else []) + [X_hat.to(X.dtype)] + ([anchor_images] if hold_anchors else [])
        features = encoder(torch.cat(inputs))
    if joint:
        Z_new, features = features[:n], features[n:]
    Z_hat, Z_anchor = features[:n_codes], features[n_codes:]
    # the global batch: new rows, then replayed rows (memory prototypes are constants)
    Z_all, labels = gather(Z_new), gather(y)
    if split_label is not None:
        labels = split_halves(gather(codes), labels, split_label)
    Z_hat_all = gather(Z_hat[:n])
    if replay is not None:
        Z_all, labels = torch.cat([Z_all, gather(old_codes)]), torch.cat([labels, gather(replay.labels)])
        Z_hat_all = torch.cat([Z_hat_all, gather(Z_hat[n:])])
    terms = game_terms(Z_all, Z_hat_all, labels, masks.num_classes, config.eps2)
    shared = shared_objective(terms, masks.new, config.new_weight)
    violation = terms.pairwise_sum(masks.old)
    penalty = constraint_penalty(violation, multiplier, rho)
    encoder_loss, decoder_loss = penalty - shared, (shared + penalty) if decoder_plays else shared.new_zeros(())
    pairwise_new = terms.pairwise_sum(masks.new)
    if not config.encoder_discriminates:
        # Maximising Σ_new ΔR(Z_j, Ẑ_j) turns f into a real-vs-decoded discriminator: features of
        # real old-class images then leave the subspaces their decodings are held to.
        encoder_loss = encoder_loss + config.new_weight * pairwise_new
    logged = {"rate_reduction_z": terms.rate_reduction_z, "rate_reduction_zhat": terms.rate_reduction_zhat,
              "pairwise_new": pairwise_new, "constraint_old": violation, "objective": shared}
    if previous_encoder is not None:
        with torch.no_grad(), autocast():
            Z_new_before = full_precision(previous_encoder(X))
        logged["distill_drift"] = gather(per_sample_drift(Z_new, Z_new_before)).mean()
        encoder_loss = encoder_loss + config.distill_weight * logged["distill_drift"]
    if hold_anchors:
        logged["anchor_drift"] = gather(per_sample_drift(Z_anchor, replay.targets)).mean()
        encoder_loss = encoder_loss + config.anchor_weight * logged["anchor_drift"]
    # the warm-up's decoder learns from its pixel error alone, so it has one even where the game has none
    pixel_weight = config.pixel_weight if decoder_plays else (config.pixel_weight or 1.0)
    if config.warmup_encoder and not decoder_plays:  # f as an autoencoder's encoder: g's error through f
        with autocast():
            reconstruction = decoder(Z_new)
        logged["encoder_pixel_error"] = gather(per_sample_pixel_error(reconstruction, X)).mean()
        encoder_loss = encoder_loss + pixel_weight * logged["encoder_pixel_error"]
    if pixel_weight and decoder_grad:
        errors = per_sample_pixel_error(X_hat[:n], X)
        if anchor_images is not None:
            errors = torch.cat([gather(errors), gather(per_sample_pixel_error(X_hat[n:], anchor_images))])
        else:
            errors = gather(errors)
        logged["pixel_error"] = errors.mean()
        decoder_loss = decoder_loss + pixel_weight * logged["pixel_error"]
    return StepResult(encoder_loss, decoder_loss, Z_new, {k: v.detach() for k, v in logged.items()})


def drawing_step(encoder: nn.Module, decoder: nn.Module, X: Tensor, replay: Replay | None, config: ICTRLConfig, *,
                 autocast=nullcontext, gather=no_gather) -> StepResult:
    """The decoder's move alone while f holds still (``decoder_finish``): pixel_weight (1 where it is 0)
    times the mean of ‖g(f(x)) − x‖² over the new batch and ‖g(z_M) − x_M‖² over the anchors, the
    loss the game's decoder has when it does not play (``decoder_plays=False``), without the encoder
    passes and rate terms that loss does not need. The codes f(X) come from f in eval mode, so that
    nothing of f moves, BatchNorm statistics included; the encoder's loss is 0."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad(), autocast():
            Z_new = full_precision(encoder(X))
    finally:
        encoder.train(was_training)
    codes = Z_new if replay is None else torch.cat([Z_new, replay.codes])
    with autocast():
        X_hat = decoder(codes)
    errors = gather(per_sample_pixel_error(X_hat[:len(X)], X))
    if replay is not None and replay.images is not None:
        errors = torch.cat([errors, gather(per_sample_pixel_error(X_hat[len(X):], replay.images))])
    pixel_error = errors.mean()
    decoder_loss = (config.pixel_weight or 1.0) * pixel_error
    return StepResult(decoder_loss.new_zeros(()), decoder_loss, Z_new, {"pixel_error": pixel_error.detach()})
