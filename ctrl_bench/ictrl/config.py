"""Every option of i-CTRL, its default, its help and the paper's value: the one place they live.

``ICTRLConfig`` is a flat dataclass in the tone of nanoGPT's ``GPTConfig``: one field per option,
each with a help string and, where the paper fixes it, the paper's value. Everything else derives
from it: :data:`PUBLISHED` (the paper's game), :data:`RETENTION` (the options that depart from the
paper), the harness's ``--option ctrl.NAME=VALUE`` help, and the options table of ``docs/ictrl.md``
(:func:`options_table`, checked by a test; print it with
``python -c "from ctrl_bench.ictrl.config import options_table; print(options_table())"``).

The paper: Tong et al., "Incremental learning of structured memory via closed-loop transcription",
ICLR 2023 (MNIST settings; the CIFAR-10 differences are in ``baselines/ctrl.py``'s paper preset).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ctrl_bench.limits import FLOAT32_MAX, INT64_MAX

CONSTRAINT_MODES = ("penalty", "augmented_lagrangian")
ENCODER_LOSSES = ("game", "no_discrimination", "real")
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
    """i-CTRL's options: the paper's game, memory and classifier, then the recipe's parts (each a
    departure from the paper, :mod:`.recipe`). ``ICTRLConfig(**PUBLISHED)`` plays the paper's game."""

    # ---- the paper's game: f max / g min of ΔR(Z) + ΔR(Ẑ) + λ Σ_new ΔR(Z_j, Ẑ_j) ∓ C(Σ_old ΔR(Z_j, Ẑ_j))
    eps2: float = option(1.0, "ε² of every rate term, R(Z) = ½ logdet(I + d/(n·ε²) ZᵀZ) (a variance: ε², not ε)",
                         paper=1.0)
    lr: float = option(1e-3, "Adam learning rate of both players", paper=1e-4)
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
    # ---- the paper's memory (per class a mean, r principal directions and their variances) and classifier
    n_directions: int = option(24, "r, principal directions stored per class", paper=12)
    n_prototypes: int = option(360, "prototypes drawn per class when the whole memory is sampled")
    replay_ratio: float | None = option(0.25, "memory codes in each step per new image of the batch, spread evenly over "
                                             "the old classes, so that a step costs the same whatever their number "
                                             "(none: the paper's, as many codes per old class as a new class has)",
                                        paper=None)
    classifier: str = option("memory", "memory: nearest subspace built from the stored statistics only; paper: refit "
                                       "on real training images of every seen class (the reference code's protocol, "
                                       "an oracle)")
    n_components: int = option(24, "principal directions per class the classifier uses", paper=15)
    # ---- the recipe: departures from the paper, each a named part (ctrl_bench/ictrl/recipe.py; docs/ictrl.md)
    decoder_warmup: float = option(0.3, "DecoderWarmup: the first part of the first experience (a fraction of its "
                                        "epochs) in which g learns to draw, minimising its pixel error alone, and f "
                                        "with it as an autoencoder's encoder that also maximises ΔR(Z) (0: off)",
                                   paper=0.0, departure=True)
    first_steps: int = option(480, "FirstSteps: the fewest optimiser steps of the first experience: where its epochs at "
                                   "the batch size give fewer, its batch shrinks to ⌊images · epochs / first_steps⌋ "
                                   "(at least 16) (0: off)", paper=0, departure=True)
    decoder_finish: float = option(0.7, "DecoderFinish: the last part of every later experience (a fraction of its "
                                        "epochs) in which f holds still and g learns to draw the new images and the "
                                        "anchors (0: off)", paper=0.0, departure=True)
    encoder_restart: int = option(10, "EncoderRestart: f's Adam moments start afresh in every later experience and its "
                                      "learning rate rises linearly to lr over the first N steps (0: off, the moments "
                                      "kept, as in the reference code)", paper=0, departure=True)
    encoder_loss: str = option("real", "game: f plays C − S (the paper); no_discrimination: "
                                       "NoDiscrimination, f does not maximise λ Σ_new ΔR(Z_j, Ẑ_j); real: "
                                       "RealFeatures, f maximises ΔR(Z) of the real features and replayed codes "
                                       "alone, no term of the decoded images", paper="game", departure=True)
    anchors_per_class: int = option(128, "AnchorHold: old-class images decoded from memory at the start of each "
                                         "experience and held fixed, replayed in its steps (0: none)", paper=0,
                                    departure=True)
    anchor_weight: float = option(1000.0, "AnchorHold: weight of the cosine drift of the anchors' features from their "
                                          "start-of-experience features", paper=0.0, departure=True)
    consistency_weight: float = option(100.0, "DrawingConsistency: in a first experience of two classes or more, "
                                              "weight of the cosine distance of f's features of g's drawing of each "
                                              "image from the image's features (0: off)", paper=0.0, departure=True)
    pixel_weight: float = option(300.0, "PixelError: weight of g's pixel error on the new batch (g(f(x)) vs x) and on "
                                        "the anchors (vs themselves)", paper=0.0, departure=True)
    drift_map: float = option(1.0, "DriftMap: λ > 0: after each later experience, move the old classes' statistics by "
                                   "the linear map of f's drift fitted on the experience's images and the anchors "
                                   "(ridge toward the identity with weight λ; LDC, Gomez-Villa et al. 2024) (0: off)",
                              paper=0.0, departure=True)
    classifier_noise: float = option(0.0, "ClassLikelihood: s² > 0: classify by each class's probabilistic-PCA "
                                          "likelihood, plus s² in every direction (a variance)", paper=0.0,
                                     departure=True)
    class_spread: bool = option(True, "ClassLikelihood: classify by each class's probabilistic-PCA likelihood with its "
                                      "own spread off its subspace (one more stored float per class)", paper=False,
                                departure=True)
    # ---- running it
    mixed_precision: bool | None = option(None, "bf16 autocast for the networks (none: on CUDA only); rate terms "
                                                "are always float32 or float64")
    images_per_class: int = option(8, "replayed images per class in the TensorBoard grids")

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            check_type(spec.name, spec.type, getattr(self, spec.name))
        for name in ("lr", "eps2"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0 and finite, got {getattr(self, name)}")
        if self.replay_ratio is not None and not (math.isfinite(self.replay_ratio) and self.replay_ratio > 0):
            raise ValueError(f"replay_ratio must be > 0 and finite (or none), got {self.replay_ratio}")
        if not (math.isfinite(self.decoder_finish) and 0 <= self.decoder_finish < 1):
            raise ValueError(f"decoder_finish must be a fraction of an experience in [0, 1), got {self.decoder_finish}")
        if not (math.isfinite(self.decoder_warmup) and 0 <= self.decoder_warmup <= 1):
            raise ValueError(f"decoder_warmup must be a fraction of the first experience in [0, 1], got {self.decoder_warmup}")
        for name in ("new_weight", "gamma", "rho", "anchor_weight", "consistency_weight", "pixel_weight",
                     "classifier_noise", "drift_map"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be ≥ 0 and finite (0 turns it off), got {value}")
        for name, choices in (("constraint", CONSTRAINT_MODES), ("classifier", CLASSIFIER_PROTOCOLS),
                              ("encoder_loss", ENCODER_LOSSES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}")
        for name in ("encoder_steps", "n_directions", "n_prototypes", "images_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("encoder_restart", "first_steps", "anchors_per_class"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0 (0 turns it off), got {getattr(self, name)}")

    def check_feature_dim(self, feature_dim: int | None) -> None:
        """The stored directions and the classifier's components fit in the feature dimension."""
        for name in ("n_directions", "n_components"):
            if feature_dim is not None and getattr(self, name) > feature_dim:
                raise ValueError(f"{name}={getattr(self, name)} is larger than the feature dimension {feature_dim}")


FIELDS = {f.name: f for f in dataclasses.fields(ICTRLConfig)}
DEFAULTS = {name: f.default for name, f in FIELDS.items()}
# The paper's game, as ICTRL(**PUBLISHED, ...) plays it.
PUBLISHED = {name: f.metadata["paper"] for name, f in FIELDS.items() if "paper" in f.metadata}
# The departures from the paper (the recipe's parts' options): name → help.
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

