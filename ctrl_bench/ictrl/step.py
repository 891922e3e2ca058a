"""One step of the i-CTRL game as a pure function: networks, a batch and the memory's replay in;
both players' losses and the step's terms out. No Avalanche, no strategy state: testable alone.

    Z_new = f(X_new)                                  with gradient; g's codes are its values
    X̂ = g([sg(Z_new); Z_old])                        sg: stop-gradient
    Ẑ = f(X̂), Z_M = f(X_M)                            decoded and anchor images
    (with BatchNorm in f: codes from a gradient-free f pass, then Z_new, Ẑ, Z_M = f([X_new; X̂; X_M]))
    T = game_terms([Z_new; Z_old], Ẑ)                 (:mod:`ctrl_bench.game`)
    S = ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j),  C = C(Σ_old ΔR(Z_j, Ẑ_j))
    encoder loss = C − S,   decoder loss = S + C      (:func:`paper_losses`, Tong et al. 2023)

and then each of the recipe's step parts (:mod:`.recipe`) adds its own terms to these losses, in the
order they are listed: one mechanism, no branch per departure here.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..game import constraint_penalty, game_terms, shared_objective
from ..rate import rate_reduction
from .config import ICTRLConfig


def full_precision(t: Tensor) -> Tensor:
    """float64 stays float64; reduced precision (bf16 under autocast) and float32 become float32."""
    return t if t.dtype == torch.float64 else t.float()


def per_sample_drift(Z: Tensor, Z_before: Tensor) -> Tensor:
    """How far f has moved fixed images, per row: 1 − ⟨z_i, b_i⟩, with z_i their features now and
    b_i = f_prev(x_i) under the encoder that started the experience (unit vectors)."""
    return 1 - (full_precision(Z) * full_precision(Z_before)).sum(1)


def per_sample_pixel_error(X_hat: Tensor, X: Tensor) -> Tensor:
    """‖g(z_i) − x_i‖² / (C·H·W) for every image i (images in [−1, 1])."""
    return (full_precision(X_hat) - full_precision(X)).pow(2).flatten(1).mean(1)


def normalises_over_the_batch(encoder: nn.Module) -> bool:
    """Whether f has BatchNorm (the conv pair). Then real, decoded and anchor images go through f in
    one call, so that they share its batch statistics, and g's codes come from a gradient-free pass
    before it. Without (the CRATE pair), the new batch's own pass gives g its codes: one pass fewer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())


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


@dataclass
class Played:
    """What one step's passes produced, for the losses: the new batch X (features Z_new), the global
    batch's real rows Z = [Z_new; Z_old] and their labels, the decoded images X̂ of the new and
    replayed codes and their features Ẑ = f(X̂) (this process's rows), the anchors' features Z_M (None
    unless they were passed through f), the replay, the game's terms and which classes are new and old."""

    X: Tensor
    Z_new: Tensor
    Z_all: Tensor
    labels: Tensor
    X_hat: Tensor
    Z_hat: Tensor
    Z_anchor: Tensor | None
    replay: Replay | None
    terms: object
    masks: ClassMasks
    decoder: nn.Module
    decoder_grad: bool
    autocast: object
    gather: object


def paper_losses(terms, masks: ClassMasks, config: ICTRLConfig, multiplier: float, rho: float):
    """The paper's losses: encoder C − S, decoder S + C, with S = ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j)
    (:func:`ctrl_bench.game.shared_objective`) and C the constraint's penalty on Σ_old ΔR(Z_j, Ẑ_j)
    (γ·c, or μ·c + ρ/2·c² with the augmented Lagrangian). Returns them with the logged terms."""
    shared = shared_objective(terms, masks.new, config.new_weight)
    violation = terms.pairwise_sum(masks.old)
    penalty = constraint_penalty(violation, multiplier, rho)
    logged = {"rate_reduction_z": terms.rate_reduction_z, "rate_reduction_zhat": terms.rate_reduction_zhat,
              "pairwise_new": terms.pairwise_sum(masks.new), "constraint_old": violation, "objective": shared}
    return penalty - shared, shared + penalty, logged


def play(encoder: nn.Module, decoder: nn.Module, X: Tensor, replay: Replay | None, *, hold_anchors: bool,
         decoder_grad: bool, autocast) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The step's network passes (the module docstring): returns Z_new, X̂, Ẑ and the anchors' features
    (None unless ``hold_anchors``)."""
    joint = normalises_over_the_batch(encoder)
    with autocast():
        if joint:
            with torch.no_grad():
                codes = full_precision(encoder(X))
        else:
            Z_new = encoder(X)
            codes = full_precision(Z_new.detach())  # g's input: constants, as the codes of the replay are
    decode = codes if replay is None else torch.cat([codes, replay.codes])
    with autocast():
        with torch.set_grad_enabled(decoder_grad):
            X_hat = decoder(decode)
        if joint:  # one call, so that BatchNorm's statistics are shared
            inputs = [X, X_hat.to(X.dtype)] + ([replay.images] if hold_anchors else [])
            features = encoder(torch.cat(inputs))
            Z_new, features = features[:len(X)], features[len(X):]
            Z_anchor = features[len(decode):] if hold_anchors else None
            return Z_new, X_hat, features[:len(decode)], Z_anchor
        # separate calls, so that a loss of the anchors alone back-propagates through their rows alone
        Z_anchor = encoder(replay.images) if hold_anchors else None
        return Z_new, X_hat, encoder(X_hat.to(X.dtype)), Z_anchor


def game_step(encoder: nn.Module, decoder: nn.Module, X: Tensor, y: Tensor, replay: Replay | None,
              masks: ClassMasks, config: ICTRLConfig, multiplier: float, *, rho: float = 0.0, parts=(),
              decoder_grad: bool = True, autocast=nullcontext, gather=no_gather) -> StepResult:
    """The losses of one step (see the module docstring): the paper's, then each of ``parts`` (the
    recipe's step parts, :func:`.recipe.step_parts`; none: the paper's game) adds its terms.
    ``multiplier`` is μ (γ for the fixed penalty), ``rho`` the augmented Lagrangian's ρ (0: the fixed
    penalty). ``decoder_grad=False`` decodes without gradient (the encoder's own move with alternating
    updates). ``autocast`` is a context factory for the networks (bf16 on CUDA); the rate terms are
    computed in float32 or float64 whatever it is.

    ``gather`` joins a per-process shard of rows into the rows of the global batch, with gradient
    (:func:`ctrl_bench.distributed.gather`): every rate term, mean and sum is then taken over
    the global batch, so that N processes, each with a shard of the batch and of the replay, compute
    the loss one process computes on all of it (the identity here: one process)."""
    hold_anchors = replay is not None and replay.images is not None and any(p.holds_anchors for p in parts)
    Z_new, X_hat, Z_hat, Z_anchor = play(encoder, decoder, X, replay, hold_anchors=hold_anchors,
                                         decoder_grad=decoder_grad, autocast=autocast)
    n = len(X)
    # the global batch: new rows, then replayed rows (memory prototypes are constants)
    Z_all, labels, Z_hat_all = gather(Z_new), gather(y), gather(Z_hat[:n])
    if replay is not None:
        Z_all, labels = torch.cat([Z_all, gather(replay.codes)]), torch.cat([labels, gather(replay.labels)])
        Z_hat_all = torch.cat([Z_hat_all, gather(Z_hat[n:])])
    terms = game_terms(Z_all, Z_hat_all, labels, masks.num_classes, config.eps2)
    encoder_loss, decoder_loss, logged = paper_losses(terms, masks, config, multiplier, rho)
    played = Played(X, Z_new, Z_all, labels, X_hat, Z_hat, Z_anchor, replay, terms, masks, decoder, decoder_grad,
                    autocast, gather)
    for part in parts:
        encoder_loss, decoder_loss = part.add(played, encoder_loss, decoder_loss, logged)
    return StepResult(encoder_loss, decoder_loss, Z_new, {k: v.detach() for k, v in logged.items()})


def pixel_error(played: Played) -> Tensor:
    """The mean over the new batch and the anchors of ‖g(z_i) − x_i‖² / (C·H·W): g's pixel error on
    the new images' codes and, with anchors, on the anchors' codes (against the anchor images)."""
    n, gather = len(played.X), played.gather
    errors = gather(per_sample_pixel_error(played.X_hat[:n], played.X))
    if played.replay is not None and played.replay.images is not None:
        errors = torch.cat([errors, gather(per_sample_pixel_error(played.X_hat[n:], played.replay.images))])
    return errors.mean()


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


def warmup_step(encoder: nn.Module, decoder: nn.Module, X: Tensor, y: Tensor, config: ICTRLConfig, *,
                autocast=nullcontext, gather=no_gather) -> StepResult:
    """The first experience's warm-up (:class:`.recipe.DecoderWarmup`) as one autoencoder step:

        Z = f(X), X̂ = g(Z) (gradient through both), e = mean_i ‖x̂_i − x_i‖² / (C·H·W)
        encoder loss = −ΔR(Z | y) + w_p e,   decoder loss = w_p e      (w_p = pixel_weight, 1 where it is 0)

    g learns to draw before it plays, f learns the classes' rate reduction and pays the same pixel
    error through g. One f pass and one decode: neither loss needs f(X̂) or the game's terms."""
    with autocast():
        Z = encoder(X)
        X_hat = decoder(Z)
    Z_all, labels = gather(Z), gather(y)
    rate = rate_reduction(Z_all, labels, config.eps2, int(labels.max()) + 1)
    error = gather(per_sample_pixel_error(X_hat, X)).mean()
    weight = config.pixel_weight or 1.0
    return StepResult(-rate + weight * error, weight * error, Z,
                      {"rate_reduction_z": rate.detach(), "pixel_error": error.detach()})
