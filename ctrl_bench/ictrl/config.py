"""Every option of i-CTRL, its default, its help and the paper's value: the one place they live.

``ICTRLConfig`` is a flat dataclass in the tone of nanoGPT's ``GPTConfig``: one field per option,
each with a help string and, where the paper fixes it, the paper's value. Everything else derives
from it: :data:`PUBLISHED` (the paper's game), :data:`RETENTION` (the options that depart from the
paper), the harness's ``--option ctrl.NAME=VALUE`` help, and the options table of ``docs/ictrl.md``
(:func:`options_table`, checked by a test; print it with
``python -c "from ctrl_bench.ictrl.config import options_table; print(options_table())"``).

The paper: Tong et al., "Incremental learning of structured memory via closed-loop transcription",
ICLR 2023 (MNIST settings; the CIFAR-10 differences are in ``baselines/ctrl.py``'s presets).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ctrl_bench.limits import FLOAT32_MAX, INT64_MAX

CONSTRAINT_MODES = ("penalty", "augmented_lagrangian")
REPLAY_BUDGETS = ("per_step", "per_class")
DRIFT_FITS = ("all", "anchors")
OPTIMIZER_RESETS = ("encoder", "both", "none")
CLASSIFIER_PROTOCOLS = {
    "memory": "memory-only (nearest subspace built from the stored feature statistics)",
    "paper": "paper protocol (nearest subspace fitted on features of the real training images of every seen class)",
}
# Avalanche's strategy arguments, as ICTRL's defaults (the quick preset's lengths).
TRAIN_EPOCHS, TRAIN_MB_SIZE, EVAL_MB_SIZE = 30, 256, 1024
MIN_FIRST_BATCH = 16  # first_steps shrinks the first experience's batch no further (rate terms need a few rows)

_NO_PAPER_VALUE = object()


def option(default, help: str, *, paper=_NO_PAPER_VALUE, departure: bool = False):
    """A field of :class:`ICTRLConfig`: its default, what it does, the paper's value (when the paper
    fixes one) and whether it is a departure from the paper's method (listed in :data:`RETENTION`)."""
    metadata = {"help": help, "departure": departure}
    if paper is not _NO_PAPER_VALUE:
        metadata["paper"] = paper
    return field(default=default, metadata=metadata)




def check_type(name: str, annotation: str, value) -> None:
    """ValueError naming option ``name`` unless ``value`` is of its annotated kind: a bool, an integer
    (within int64), a real number (within float32's range) or a word; None where the annotation allows it."""
    if value is None and ("None" in annotation or annotation == "str"):
        return
    kind = annotation.split(" | ")[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if kind == "int" and not (number and isinstance(value, int) and abs(value) <= INT64_MAX):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if kind == "float" and not number:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if kind == "float" and math.isfinite(value) and abs(value) > FLOAT32_MAX:  # inf and nan: the ranges below
        raise ValueError(f"{name} must be at most {FLOAT32_MAX:.4g} in size (a float32), got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"{name} must be a word, got {value!r}")


@dataclass(frozen=True)
class ICTRLConfig:
    """i-CTRL's game, memory, retention and classifier options. ``ICTRLConfig(**PUBLISHED)`` plays the
    paper's game; the defaults keep every class of the MNIST subset with a tiny CRATE pair."""

    # ---- the game: encoder max / decoder min of ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) ∓ C(Σ_old ΔR(Z_j, Ẑ_j))
    eps2: float = option(1.0, "ε² of every rate term, R(Z) = ½ logdet(I + d/(n·ε²) ZᵀZ) (a variance: ε², not ε)",
                         paper=1.0)
    lr: float = option(1e-3, "Adam learning rate of both players (the decoder's times decoder_lr_scale)", paper=1e-4)
    decoder_lr_scale: float = option(1.0, "the decoder's learning rate over the encoder's: the memory holds only what g "
                                          "can draw, and g must learn to draw within the first experience's steps",
                                     paper=1.0, departure=True)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both players (\"other betas collapse\")",
                                        paper=(0.5, 0.999))
    new_weight: float = option(1.0, "λ on Σ_new ΔR(Z_j, Ẑ_j) in every experience (λ = 1 on the first is plain CTRL)",
                               paper=10.0)
    constraint: str = option("penalty", "penalty: the fixed penalty γ·c of the constraint c = Σ_old ΔR(Z_j, Ẑ_j) = 0; "
                                        "augmented_lagrangian: μ·c + ρ/2·c², μ from γ grows by ρ·c after every epoch")
    gamma: float = option(1.0, "γ, the constraint's weight (the multiplier's start with augmented_lagrangian)",
                          paper=1.0)
    rho: float = option(1.0, "ρ of the augmented Lagrangian (unused with penalty)")
    encoder_steps: int = option(1, "k ≥ 1: k − 1 extra encoder steps maximising ΔR(Z) alone before each step of both "
                                   "players (the reference CIFAR-10 code uses 2)")
    alternate: bool = option(False, "true: the encoder steps, then the decoder steps against the updated encoder on a "
                                    "fresh forward (the reference code); false: both players step on the gradients "
                                    "of one forward", paper=True)
    decoder_warmup: float = option(0.3, "the first part of the first experience (a fraction of its epochs) in which the "
                                        "decoder learns to draw, minimising its pixel error alone, before it joins the "
                                        "game (the memory holds only what g can draw)", paper=0.0, departure=True)
    # 480 on validation (--validation 0.1, 3 seeds), the budget 30 epochs for every data set: generated strokes
    # (synthetic:8, 2 experiences) keep their first classes at 0.975–1.00 against 0.03–1.00 with 240;
    # mnist-5k in 10 experiences Last 0.905 ± 0.014 against 0.867 ± 0.024 (first class 0.96 / 0.70 / 0.86
    # against 0.78 / 0.38 / 0.72); CIFAR-10 subset, seed 0: 0.368 against 0.363 (and 0.368 with the 150-epoch
    # first experience the quick preset gave every method on CIFAR-10 until issue 28); mnist-5k in 5
    # experiences level, 0.907 ± 0.014 (0.900, 0.894, 0.926) against 0.908 ± 0.006 (0.904, 0.904, 0.916).
    # On the test set it did not repeat the 10-experience gain (0.885 ± 0.018 against 0.889 ± 0.005).
    first_steps: int = option(480, "the fewest optimiser steps of the first experience (before the memory holds "
                                   "anything, g must learn to draw in it): where its epochs at the batch size give "
                                   "fewer, its batch shrinks to ⌊images · epochs / first_steps⌋ (at least "
                                   "16); the later experiences keep the batch size (0: off)", paper=0, departure=True)
    # 0.3 on validation (3 seeds, with optimizer_reset=encoder and encoder_lr_warmup=10): the CIFAR-10 subset
    # in 10 experiences 0.360 ± 0.008 against 0.333 ± 0.017, in 5 experiences 0.381 ± 0.009 against 0.360 ±
    # 0.017; mnist_5k in 10 experiences 0.900 ± 0.007 against 0.897 ± 0.010 (docs/results.md).
    decoder_finish: float = option(0.3, "the last part of every later experience (a fraction of its epochs) in which the "
                                        "encoder holds still and the decoder learns to draw, minimising its pixel error "
                                        "alone on the new images and the anchors: f does not drift there, and the memory "
                                        "replays the new classes as g draws them (0: off)", paper=0.0, departure=True)
    # The encoder's on validation (3 seeds): mnist_5k in 10 experiences 0.888 ± 0.035 against 0.836 ± 0.113
    # for both players' and 0.835 ± 0.054 kept; synthetic:40 in 20 experiences 0.723 ± 0.026 against
    # 0.765 ± 0.014 and 0.477 ± 0.061 kept (docs/results.md, "Adam's moments"). Kept, the second
    # experience of 6 classes learnt one at a time moves the first class's anchors to cos 0.50 of where
    # they started (their drift jumps from 0.08 to 0.72 in one step) and that class ends at 0.40–0.70.
    optimizer_reset: str = option("encoder", "whose Adam moments start afresh in every experience. encoder: f's (a new "
                                             "experience brings the anchor and constraint terms into f's loss, whose "
                                             "gradients are far larger than the last experience's, and against the kept, "
                                             "small second moments f's first steps would be many learning rates long); "
                                             "both: f's and g's; none: kept across experiences (the reference code)",
                                  paper="none", departure=True)
    # 10 on validation (3 seeds, with optimizer_reset=encoder): mnist_5k in 10 experiences 0.897 ± 0.010 against
    # 0.888 ± 0.035 without, replay judge 0.91 against 0.85; synthetic:40 in 20 experiences level (0.725
    # against 0.723); after the reset f's first step moves every parameter by lr at once (the anchors' drift
    # 0.24 after it on 6 lone classes).
    encoder_lr_warmup: int = option(10, "f's learning rate rises linearly to lr over the first N steps of every later "
                                        "experience (lr·min(1, (k+1)/N) at its k-th step): after optimizer_reset its "
                                        "first step would move every parameter by the whole learning rate at once, a "
                                        "jump the anchor term only pulls back later (0: off)", paper=0, departure=True)
    # Off: on the CIFAR-10 subset's validation split (5 experiences, 3 seeds) 0.3 gave 0.370 ± 0.007 against
    # the family's 0.381 ± 0.009; its first experience's classes ended no higher (0.29, 0.29, 0.49 against
    # 0.29, 0.29, 0.51).
    later_lr_scale: float = option(1.0, "f's learning rate in every later experience, over lr (a slow learner, as in "
                                        "SLCA, Zhang et al. 2023): the features the stored statistics describe move "
                                        "less, while g, at the full rate, learns to draw the new classes (1: off)",
                                   paper=1.0, departure=True)
    warmup_encoder: bool = option(True, "in the decoder's warm-up the encoder also minimises g's pixel error on the "
                                        "new batch, ‖g(f(x)) − x‖² through both (an autoencoder's encoder): with one "
                                        "class the rate reduction is zero and f would otherwise learn nothing before "
                                        "that class's statistics are stored", paper=False, departure=True)
    lone_class_split: bool = option(True, "a class learnt alone (the first experience holds one class): the game's rate "
                                          "terms see each batch of it in two halves, by the sign of its features along "
                                          "their first principal direction, and the memory stores the halves as two "
                                          "sub-classes of its label (the classifier takes the better of the two): with "
                                          "one class ΔR(Z) is zero, and f would otherwise learn no subspace structure "
                                          "(classes learnt one at a time then crowd one cone)", paper=False,
                                    departure=True)
    # ---- the memory: per class a mean, r principal directions and their variances; prototypes drawn from them
    # 24 on validation (--validation 0.1, 3 seeds): mnist-5k Last 0.914 ± 0.005 against 0.895 ± 0.004 with 16
    # (the classifier with n_components = 24); CIFAR-10 subset, seeds 0 1: 0.361 against 0.340; strokes level.
    n_directions: int = option(24, "r, principal directions stored per class", paper=12)
    n_prototypes: int = option(360, "prototypes drawn per class when the whole memory is sampled")
    replay_budget: str = option("per_step", "per_step: replay_ratio memory codes (anchors) in each step per new image "
                                             "of the batch, spread evenly over the old classes (a step costs the same "
                                             "whatever the number of old classes); per_class: replay_per_class codes "
                                             "per old class", paper="per_class")
    replay_per_class: int | None = option(64, "with replay_budget=per_class: memory codes per old class in each step "
                                              "(none: as many as a new class has in the batch)", paper=None)
    # 0.5 on validation (mnist-5k, --validation 0.1, 3 seeds): Last 0.895 ± 0.004 against 0.897 ± 0.013 at
    # 1.0, a fifth less time (66 s against 83 s a run); generated strokes 0.944 against 0.940.
    replay_ratio: float = option(0.5, "with replay_budget=per_step: memory codes in each step per new image of the batch")
    review: bool = option(False, "refresh old classes' statistics through f∘g after each experience")
    drift_sigma: float = option(0.0, "σ > 0: after each experience, move each old class's stored mean by the drift "
                                     "of the experience's images' features near it (SDC, Yu et al. 2020; weights "
                                     "exp(−‖z − μ_c‖²/2σ²)); 0: off", paper=0.0, departure=True)
    # 1.0 on validation (3 seeds; docs/results.md): synthetic:40 in 20 experiences 0.887 ± 0.010 against
    # 0.819 ± 0.019 without, mnist_5k in 10 experiences 0.909 ± 0.011 against 0.900 ± 0.007; the CIFAR-10
    # subset loses with it (5 experiences 0.361 ± 0.011 against 0.381 ± 0.009, 10 experiences 0.357 against
    # 0.360; λ = 10: 0.362), so its family's preset turns it off (baselines/ctrl.py).
    drift_map: float = option(1.0, "λ > 0: after each later experience, move every old class's stored statistics by "
                                   "the linear map W of f's drift, fitted on the features that the experience's images "
                                   "and the old classes' anchors had under f at its start and have at its end (ridge "
                                   "toward the identity with weight λ; LDC, Gomez-Villa et al. 2024, in closed form, "
                                   "the anchors standing for the old classes): means μW, and the directions, "
                                   "variances and spread off them of WᵀCW, C a class's probabilistic-PCA "
                                   "covariance; 0: off", paper=0.0, departure=True)
    # All: fitted on the anchors alone, the map lost on the CIFAR-10 subset's validation split (5 experiences,
    # 3 seeds, drift_map=1: 0.366 ± 0.008 against the family's 0.381 ± 0.009 with the map off, 0.361 ± 0.011
    # fitted on both) and was level on synthetic:40 in 20 experiences (0.897 ± 0.014 against 0.901 ± 0.019).
    drift_fit: str = option("all", "the rows drift_map fits W on: all, the experience's images and the old classes' "
                                   "anchors; anchors, the anchors alone (the new images' features move also because "
                                   "their classes are being learnt, which the old classes' do not)", departure=True)
    # ---- retention: departures from the paper, each one named (docs/ictrl.md, "How i-CTRL keeps its old
    # classes: the retention options", and its ablation)
    encoder_discriminates: bool = option(
        False, "true: the encoder also maximises λ Σ_new ΔR(Z_j, Ẑ_j), learning to tell real images from their "
               "decodings (the paper); false: only the decoder minimises it", paper=True, departure=True)
    anchors_per_class: int = option(128, "old-class images decoded from memory at the start of each experience and "
                                         "held fixed (0: none)", paper=0, departure=True)
    anchor_weight: float = option(1000.0, "weight of the cosine drift of the anchors' features from their "
                                          "start-of-experience features", paper=0.0, departure=True)
    pixel_weight: float = option(300.0, "weight of g's pixel error on the new batch (g(f(x)) vs x) and on the anchors "
                                        "(vs themselves)", paper=0.0, departure=True)
    distill_weight: float = option(0.0, "weight of the cosine drift of the new batch's features from their features "
                                        "under a frozen copy of f taken at the start of the experience (feature "
                                        "distillation on new images; the copy counts as memory)", paper=0.0,
                                   departure=True)
    # ---- the classifier
    classifier: str = option("memory", "memory: nearest subspace built from the stored statistics only; paper: refit "
                                       "on real training images of every seen class (the reference code's protocol, "
                                       "an oracle)")
    n_components: int = option(24, "principal directions per class the classifier uses", paper=15)
    classifier_noise: float = option(0.0, "s² > 0: classify by each class's probabilistic-PCA likelihood (its stored "
                                          "mean, directions and variances, plus s² in every direction) instead of the "
                                          "distance to its subspace (a variance)", paper=0.0, departure=True)
    class_spread: bool = option(True, "classify by each class's probabilistic-PCA likelihood with its own spread off "
                                       "its subspace (the mean of its discarded eigenvalues, one more stored float "
                                       "per class), plus classifier_noise: a class learnt with few others is spread "
                                       "wide, and a compact newer class's subspace would otherwise take its images",
                                paper=False, departure=True)
    # ---- running it
    mixed_precision: bool | None = option(None, "bf16 autocast for the networks (none: on CUDA only); rate terms "
                                                "are always float32 or float64")
    images_per_class: int = option(8, "replayed images per class in the TensorBoard grids")

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            check_type(spec.name, spec.type, getattr(self, spec.name))
        for name in ("lr", "eps2", "decoder_lr_scale", "later_lr_scale"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0 and finite, got {getattr(self, name)}")
        if not (math.isfinite(self.replay_ratio) and self.replay_ratio > 0):
            raise ValueError(f"replay_ratio must be > 0 and finite, got {self.replay_ratio}")
        if not (math.isfinite(self.decoder_finish) and 0 <= self.decoder_finish < 1):
            raise ValueError(f"decoder_finish must be a fraction of an experience in [0, 1), got {self.decoder_finish}")
        if not (math.isfinite(self.decoder_warmup) and 0 <= self.decoder_warmup <= 1):
            raise ValueError(f"decoder_warmup must be a fraction of the first experience in [0, 1], got {self.decoder_warmup}")
        for name in ("new_weight", "gamma", "rho", "anchor_weight", "pixel_weight", "distill_weight",
                     "classifier_noise", "drift_sigma", "drift_map"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be ≥ 0 and finite (0 turns it off), got {value}")
        if self.drift_sigma and self.drift_map:
            raise ValueError("drift_sigma and drift_map are two ways to move the old classes' statistics; set the "
                             f"other to 0 (drift_map is {DEFAULTS['drift_map']} by default)")
        if self.drift_fit not in DRIFT_FITS:
            raise ValueError(f"unknown drift_fit {self.drift_fit!r}; choose one of {', '.join(DRIFT_FITS)}")
        if self.drift_map and self.drift_fit == "anchors" and not self.anchors_per_class:
            raise ValueError("drift_fit=anchors fits the drift map on the anchors, and anchors_per_class is 0; "
                             "set anchors_per_class ≥ 1 or drift_fit=all")
        if self.replay_budget not in REPLAY_BUDGETS:
            raise ValueError(f"unknown replay_budget {self.replay_budget!r}; choose one of {', '.join(REPLAY_BUDGETS)}")
        if self.optimizer_reset is None:  # the command line reads --option ctrl.optimizer_reset=none as None
            object.__setattr__(self, "optimizer_reset", "none")
        if self.optimizer_reset not in OPTIMIZER_RESETS:
            raise ValueError(f"unknown optimizer_reset {self.optimizer_reset!r}; choose one of {', '.join(OPTIMIZER_RESETS)}")
        if self.constraint not in CONSTRAINT_MODES:
            raise ValueError(f"unknown constraint mode {self.constraint!r}; choose one of {', '.join(CONSTRAINT_MODES)}")
        if self.classifier not in CLASSIFIER_PROTOCOLS:
            raise ValueError(f"unknown classifier {self.classifier!r}; choose one of {', '.join(CLASSIFIER_PROTOCOLS)}")
        if self.encoder_steps < 1:
            raise ValueError(f"encoder_steps must be at least 1, got {self.encoder_steps}")
        for name in ("n_directions", "n_prototypes", "images_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.encoder_lr_warmup < 0:
            raise ValueError(f"encoder_lr_warmup must be ≥ 0 (0 turns it off), got {self.encoder_lr_warmup}")
        if self.first_steps < 0:
            raise ValueError(f"first_steps must be ≥ 0 (0 turns it off), got {self.first_steps}")
        if self.anchors_per_class < 0:
            raise ValueError(f"anchors_per_class must be ≥ 0 (0 turns it off), got {self.anchors_per_class}")
        if self.replay_per_class is not None and self.replay_per_class < 1:
            raise ValueError(f"replay_per_class must be at least 1 (or none), got {self.replay_per_class}")

    def check_feature_dim(self, feature_dim: int | None) -> None:
        """The stored directions and the classifier's components fit in the feature dimension."""
        for name in ("n_directions", "n_components"):
            if feature_dim is not None and getattr(self, name) > feature_dim:
                raise ValueError(f"{name}={getattr(self, name)} is larger than the feature dimension {feature_dim}")


FIELDS = {f.name: f for f in dataclasses.fields(ICTRLConfig)}
DEFAULTS = {name: f.default for name, f in FIELDS.items()}
# The paper's game, as ICTRL(**PUBLISHED, ...) plays it.
PUBLISHED = {name: f.metadata["paper"] for name, f in FIELDS.items() if "paper" in f.metadata}
# The departures from the paper (each a named option; some on by default, others, such as drift_sigma,
# distill_weight and classifier_noise, off until set): name → help.
RETENTION = {name: f.metadata["help"] for name, f in FIELDS.items() if f.metadata["departure"]}


def _shown(value) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def option_help(name: str) -> str:
    """e.g. "weight of … (default 1000.0; paper 0.0)"."""
    f = FIELDS[name]
    paper = f"; paper {_shown(f.metadata['paper'])}" if "paper" in f.metadata else ""
    return f"{f.metadata['help']} (default {_shown(f.default)}{paper})"


def options_table() -> str:
    """The Markdown table of every option (docs/ictrl.md holds it; a test checks they agree)."""
    lines = ["| option | default | paper | departure | what it does |", "|---|---|---|---|---|"]
    for name, f in FIELDS.items():
        paper = _shown(f.metadata["paper"]) if "paper" in f.metadata else "–"
        lines.append(f"| `{name}` | {_shown(f.default)} | {paper} | {'yes' if f.metadata['departure'] else ''} | "
                     f"{f.metadata['help'].replace('|', '/')} |")
    return "\n".join(lines)

