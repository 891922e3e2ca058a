"""i-CTRL (Tong et al. 2023): the constrained closed-loop transcription game with a memory of
feature statistics. The encoder / decoder pair is ``--backbone`` (conv or crate) at ``--size``.
Every option is a field of ``ctrl_bench.ictrl.ICTRLConfig`` (``--option ctrl.NAME=VALUE``)."""

from ctrl_bench.autoencoder import build_autoencoder
from ctrl_bench.ictrl.config import CLASSIFIER_PROTOCOLS, DEFAULTS, FIELDS, PUBLISHED, ICTRLConfig, option_help
from ctrl_bench.ictrl.strategy import ICTRL


DECODES_MEMORY = True  # the harness scores its decoded memory with the replay judge
DISTRIBUTED = True  # its loss is computed on the whole batch over the processes of a distributed run (--distributed)
BACKBONES = ("conv", "crate")  # an encoder / decoder pair
# --ctrl-NAME VALUE on the command line: --option ctrl.NAME=VALUE.
CLI_FLAGS = {
    "epochs": {"help": "epochs of the game per experience"},
    "batch_size": {"help": "images per step of the game"},
    "lr": {"help": "Adam learning rate of both players"},
    "eps2": {"help": "ε² of the rate terms"},
    "new_weight": {"help": "λ on ΔR(Z_new, Ẑ_new)"},
    "gamma": {"help": "γ on the constraint ΔR(Z_old, Ẑ_old) (start of μ)"},
    "constraint": {"help": "penalty or augmented_lagrangian"},
    "classifier": {"help": "memory or paper (an oracle)"},
    "init": {"help": "default or dcgan (the conv pair)"},
    "updates": {"help": "alternating: the encoder steps, then the decoder against the updated encoder (reference code; "
                        "paper preset with --backbone conv); simultaneous: both from one forward",
                "option": "alternate", "choices": {"alternating": True, "simultaneous": False}},
}

# What the tuner searches (ctrl-bench tune); the quick preset's values lie inside.
SEARCH_SPACE = {"lr": ("log", 1e-4, 3e-3), "batch_size": ("choice", (64, 128, 256)), "new_weight": ("log", 0.3, 10.0),
                "gamma": ("log", 0.3, 30.0), "decoder_warmup": ("uniform", 0.1, 0.5),
                "pixel_weight": ("log", 30.0, 3000.0), "anchor_weight": ("log", 100.0, 1e4)}
OPTIONS = {**{name: option_help(name) for name in FIELDS if name != "betas"},
           "init": "initialisation of the conv pair: default (PyTorch's) or dcgan (the reference code's N(0, 0.02)); "
                   "CRATE always uses PyTorch's (default: default; paper preset with --backbone conv: dcgan)"}

# Where ctrl's settings depart from ICTRL's defaults, by preset and scenario family. The training
# budget (epochs per experience, the first one's included) is every method's: harness/presets.py.
QUICK = {"batch_size": 256}
# The published batch sizes (i-CTRL: 2048 / 1600, 360 / 480 prototypes per class, two encoder steps per
# step on CIFAR-10; its 120 / 100 epochs are the paper preset's budget for every method).
PAPER = {"batch_size": 2048, "n_prototypes": 360}
PAPER_CIFAR = {"batch_size": 1600, "n_prototypes": 480, "encoder_steps": 2}
# --preset paper --backbone conv: the reference code's DCGAN pair and game (λ = 8 on CIFAR-10).
PAPER_REFERENCE = {**PUBLISHED, "init": "dcgan"}
PAPER_REFERENCE_CIFAR = {"new_weight": 8.0}


def preset(name: str, family: str, backbone: str) -> dict:
    """ctrl's own settings in preset ``name`` for a scenario of ``family`` ("mnist", "cifar", …)."""
    cifar = family == "cifar"
    if name == "quick":
        return dict(QUICK)  # one recipe for every data set
    if name == "paper":
        settings = {**PAPER, **(PAPER_CIFAR if cifar else {})}
        if backbone == "conv":
            settings.update(PAPER_REFERENCE, **(PAPER_REFERENCE_CIFAR if cifar else {}))
        return settings
    return {}


def resolve_options(options: dict) -> dict:
    """Every game option of a run, ICTRL's defaults filled in, so that its record names them all."""
    return {**{k: v for k, v in DEFAULTS.items() if k in OPTIONS}, "init": "default", **options}


def check_options(options: dict) -> None:
    """The values ICTRLConfig refuses, before anything runs."""
    fields = {k: v for k, v in options.items() if k in FIELDS}
    try:
        ICTRLConfig(**fields)
    except TypeError as err:
        raise ValueError(f"options: {err}") from None
    if options.get("init", "default") not in ("default", "dcgan"):
        raise ValueError(f"init must be default or dcgan, got {options['init']!r}")


def build(ctx):
    if ctx.backbone not in BACKBONES:
        raise ValueError(f"ctrl needs an autoencoder backbone: {' or '.join(BACKBONES)}, not {ctx.backbone!r}")
    init = ctx.options.get("init", "default") if ctx.backbone == "conv" else "default"
    encoder, decoder = build_autoencoder(ctx.backbone, ctx.image_shape, ctx.feature_dim, ctx.size, init=init)
    options = {k: v for k, v in ctx.options.items() if k in FIELDS}
    return ICTRL(encoder=encoder, decoder=decoder, num_classes=ctx.n_classes, **ctx.template_kwargs(), **options)


def memory_budget(ctx, strategy):
    return f"{strategy.memory.size_in_floats()} floats ({strategy.classifier_protocol})"


def memory_floats(ctx, strategy):
    """The feature statistics (means, directions, variances, spreads)."""
    return strategy.memory.size_in_floats()


def oracle(ctx, strategy):
    """The paper protocol refits the classifier on real training images of every seen class."""
    return CLASSIFIER_PROTOCOLS["paper"] if strategy.classifier_protocol == "paper" else None


def record_fields(ctx, strategy) -> dict:
    """ctrl's own fields of a record, and the note the results tables print about them."""
    protocol = strategy.classifier_protocol
    return {"classifier_protocol": protocol, "notes": [f"classifier: {CLASSIFIER_PROTOCOLS[protocol]}"]}
