"""The recipe: ctrl's departures from the paper's i-CTRL, one named part each.

The paper's game, memory and classifier are :func:`.step.paper_losses`, :mod:`.plugins` and
:class:`ctrl_bench.subspace.NearestSubspaceClassifier`; ``ctrl_paper`` runs them alone. Each part here
says what it does and why; its options are fields of :class:`.config.ICTRLConfig` whose help starts
with its name, their paper values turn it off, and ``docs/ictrl.md`` ("The recipe") has the
leave-one-out ablation row that keeps it. :data:`RECIPE` lists the parts.

Step parts (:data:`STEP_PARTS`) add terms to a step's losses, in their order, through
``add(played, encoder_loss, decoder_loss, logged) → (encoder_loss, decoder_loss)``. Parts that act
between steps are Avalanche plugins (:class:`EncoderRestart`) or rules the strategy asks
(:class:`FirstSteps`, :class:`DecoderWarmup`, :class:`DecoderFinish`, the last two with their own
steps, :func:`.step.warmup_step` and :func:`.step.drawing_step`). Two act in the memory and its
classifier, where the paper's counterparts live: DriftMap and ClassLikelihood
(:class:`.plugins.FeatureMemoryPlugin`).
"""

from __future__ import annotations

from avalanche.core import SupervisedPlugin
from .config import MIN_FIRST_BATCH, ICTRLConfig
from .step import Played, per_sample_drift, pixel_error


class StepPart:
    """A part that adds terms to a step's losses (:func:`.step.game_step`): ``enabled(config)`` says
    whether the config turns it on, ``add(played, encoder_loss, decoder_loss, logged)`` returns the
    two losses with its terms added, and ``holds_anchors`` whether it needs the anchors' features."""

    holds_anchors = False

    def __init__(self, config: ICTRLConfig):
        self.config = config

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        raise NotImplementedError

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        raise NotImplementedError


class NoDiscrimination(StepPart):
    """f does not maximise λ Σ_new ΔR(Z_j, Ẑ_j): maximising it turns f into a real-versus-decoded
    discriminator, and features of real old-class images then leave the subspaces their decodings
    are held to. Adds λ Σ_new ΔR(Z_j, Ẑ_j) to the encoder's loss, cancelling its share of −S."""

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        return config.encoder_loss == "no_discrimination"

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        return encoder_loss + self.config.new_weight * logged["pairwise_new"], decoder_loss


class RealFeatures(StepPart):
    """f's loss takes no term of the decoded images: it maximises ΔR(Z | y) of the real features and
    the replayed codes (MCR² with the old classes as fixed rows), held by the anchors; the closed loop
    (ΔR(Ẑ), the pairwise terms, the constraint) trains g alone. f's backward pass then skips its pass
    over the decoded images (Z's terms are their own call in :func:`ctrl_bench.game.game_terms`), except
    where DrawingConsistency adds a term of them."""

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        return config.encoder_loss == "real"

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        return -played.terms.rate_reduction_z, decoder_loss


class AnchorHold(StepPart):
    """Anchors: at the start of an experience, old-class images are decoded from memory and held
    fixed with their features then (:class:`.plugins.AnchorReplayPlugin`); each step replays some
    and f pays w_a · mean(1 − ⟨f(x_M), f_start(x_M)⟩), so that the features the stored statistics
    describe stay where they were. Without it, old classes are held only through g's decodings."""

    holds_anchors = True

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        return bool(config.anchors_per_class and config.anchor_weight)

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        if played.Z_anchor is None:
            return encoder_loss, decoder_loss
        logged["anchor_drift"] = played.gather(per_sample_drift(played.Z_anchor, played.replay.targets)).mean()
        return encoder_loss + self.config.anchor_weight * logged["anchor_drift"], decoder_loss


class DrawingConsistency(StepPart):
    """In the first experience, f pays w_c · mean_i (1 − ⟨f(g(z_i)), sg(z_i)⟩) over the batch,
    z_i = f(x_i): it maps g's drawing of an image where it maps the image. Every later experience holds
    the first classes through g's drawings of them (the anchors); where g draws unlike the real images,
    an f that sees the two apart moves the real ones and keeps the drawings, and the stored statistics
    then describe features no real image has. The real features are the targets (constants); the term
    reaches f through its pass over the drawings. It is off where the first experience has one class:
    there ΔR(Z | y) is zero, the term would be f's only aim in the game, and f would meet it by dropping
    what g cannot draw."""

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        return bool(config.consistency_weight)

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        if played.masks.old.any() or played.masks.new.sum() < 2:
            return encoder_loss, decoder_loss
        n = len(played.X)
        logged["drawing_drift"] = played.gather(per_sample_drift(played.Z_hat[:n], played.Z_new.detach())).mean()
        return encoder_loss + self.config.consistency_weight * logged["drawing_drift"], decoder_loss


class PixelError(StepPart):
    """g also minimises w_p times its pixel error on the new batch (g(f(x)) against x) and on the
    anchors (against themselves): the memory holds only what g can draw, and the rate terms alone
    leave g free to draw any image whose features fall in the right subspace."""

    @staticmethod
    def enabled(config: ICTRLConfig) -> bool:
        return bool(config.pixel_weight)

    def add(self, played: Played, encoder_loss, decoder_loss, logged):
        if not played.decoder_grad:
            return encoder_loss, decoder_loss
        logged["pixel_error"] = pixel_error(played)
        return encoder_loss, decoder_loss + self.config.pixel_weight * logged["pixel_error"]


class DecoderWarmup:
    """In the first ``decoder_warmup`` of the first experience's epochs g learns to draw before it
    joins the game: each step is an autoencoder's (:func:`.step.warmup_step`), g's loss its pixel
    error alone (weight w_p, 1 where w_p is 0), f's the rate reduction of its features plus the same
    error through g: with one class the rate reduction is zero, and f would otherwise learn nothing
    before it is stored."""

    def __init__(self, config: ICTRLConfig):
        self.fraction = config.decoder_warmup

    def active(self, strategy) -> bool:
        """Whether the next step is in the first experience's warm-up."""
        first = not len(strategy.memory)
        return first and strategy.clock.train_exp_epochs < self.fraction * strategy.train_epochs


class DecoderFinish:
    """In the last ``decoder_finish`` of every later experience's epochs f holds still and g learns
    to draw the new images and the anchors (:func:`.step.drawing_step`): f does not drift there, and
    the memory replays the new classes as g draws them. Its steps cost a third of a game step."""

    def __init__(self, config: ICTRLConfig):
        self.fraction = config.decoder_finish

    def active(self, strategy) -> bool:
        """Whether the next step is in a later experience's finish."""
        later = bool(len(strategy.memory))
        return later and strategy.clock.train_exp_epochs >= (1 - self.fraction) * strategy.train_epochs


class FirstSteps:
    """The first experience (nothing in memory yet; g must learn to draw in it) gets at least
    ``first_steps`` optimiser steps: its batch shrinks to ⌊images · epochs / first_steps⌋, not below
    MIN_FIRST_BATCH. The number of images it sees is the budget's; only their grouping changes."""

    def __init__(self, config: ICTRLConfig):
        self.steps = config.first_steps

    def batch(self, batch_size: int, n_images: int, epochs: int, first: bool) -> int:
        if not (first and self.steps):
            return batch_size
        return min(batch_size, max(MIN_FIRST_BATCH, n_images * epochs // self.steps))


class EncoderRestart(SupervisedPlugin, supports_distributed=True):
    """f's Adam moments start afresh in every experience, and in a later one its learning rate rises
    linearly to lr over the first ``encoder_restart`` steps (lr·min(1, (k+1)/N) at step k). A new
    experience brings the anchor and constraint terms into f's loss, with gradients far larger than
    the last experience's: against the kept, small second moments, f's first steps would be many
    learning rates long; after the reset, its first step would move every parameter by lr at once."""

    def __init__(self, config: ICTRLConfig):
        super().__init__()
        self.steps = config.encoder_restart
        self._base_lr: list[float] = []

    def before_training_exp(self, strategy, **kwargs):
        strategy.optimizer.state.clear()

    def before_training_iteration(self, strategy, **kwargs):
        k = strategy.clock.train_exp_iterations
        if not len(strategy.memory) or k >= self.steps:
            return
        if k == 0:
            self._base_lr = [group["lr"] for group in strategy.optimizer.param_groups]
        for group, base in zip(strategy.optimizer.param_groups, self._base_lr):
            group["lr"] = base * min(1.0, (k + 1) / self.steps)


# Every part, with the option whose paper value turns it off (docs/ictrl.md's ablation has a row each).
RECIPE = {"NoDiscrimination": "encoder_loss", "RealFeatures": "encoder_loss", "AnchorHold": "anchors_per_class",
          "DrawingConsistency": "consistency_weight", "PixelError": "pixel_weight", "DecoderWarmup": "decoder_warmup", "DecoderFinish": "decoder_finish",
          "FirstSteps": "first_steps", "EncoderRestart": "encoder_restart",
          "DriftMap": "drift_map", "ClassLikelihood": "class_spread"}


STEP_PARTS = (NoDiscrimination, RealFeatures, AnchorHold, DrawingConsistency, PixelError)  # in the order they add their terms


def step_parts(config: ICTRLConfig) -> tuple:
    """The step parts ``config`` turns on, in the order of :data:`STEP_PARTS`."""
    return tuple(part(config) for part in STEP_PARTS if part.enabled(config))
