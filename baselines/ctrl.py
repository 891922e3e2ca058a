"""i-CTRL (Tong et al. 2023): the constrained closed-loop transcription game with a memory of
feature statistics. The encoder / decoder pair is ``--backbone`` (conv or crate) at ``--size``."""

from ctrl_bench import build_autoencoder
from ctrl_bench.strategy import CLASSIFIER_PROTOCOLS, ICTRL, RETENTION

from ._backbones import model_floats

# Game and memory options a preset or the command line may set (ctx.options["ctrl"]).
GAME_OPTIONS = ("eps2", "lr", "new_weight", "constraint", "gamma", "rho", "encoder_steps", "alternate",
                "first_epochs", "n_directions", "n_prototypes", "replay_per_class", "review", "classifier",
                "n_components", *RETENTION)

DECODES_MEMORY = True  # the harness scores its decoded memory with the replay judge

# Set with --option ctrl.NAME=VALUE; they override the preset (ctx.options["ctrl"]).
OPTIONS = {
    **RETENTION,
    "first_epochs": "epochs of the game on the first experience (default: as every experience)",
    "replay_per_class": "memory prototypes (anchors) per old class in each step",
    "n_components": "principal directions per class the nearest-subspace classifier uses",
    "n_directions": "principal directions stored per class in the memory",
}


def build(ctx):
    if ctx.backbone not in ("conv", "crate"):
        raise ValueError(f"ctrl needs an autoencoder backbone: conv or crate, not {ctx.backbone!r}")
    options = dict(ctx.options.get("ctrl", {}))
    options.update({name: ctx.options[name] for name in OPTIONS if name in ctx.options})
    init = options.pop("init", "default")
    if ctx.backbone != "conv":
        init = "default"  # the DCGAN initialisation belongs to the conv pair
    encoder, decoder = build_autoencoder(ctx.backbone, ctx.image_shape, ctx.feature_dim, ctx.size, init=init)
    kwargs = ctx.template_kwargs()
    kwargs["train_epochs"] = options.pop("epochs", ctx.epochs)
    kwargs["train_mb_size"] = options.pop("batch_size", ctx.batch_size)
    unknown = set(options) - set(GAME_OPTIONS)
    if unknown:
        raise ValueError(f"unknown ctrl options {sorted(unknown)}; known: {', '.join(GAME_OPTIONS)}")
    return ICTRL(encoder=encoder, decoder=decoder, num_classes=ctx.n_classes, **kwargs, **options)


def memory_budget(ctx, strategy):
    frozen = " + frozen encoder" if strategy.previous_encoder is not None else ""
    return f"{strategy.memory.size_in_floats()} floats ({strategy.classifier_protocol}){frozen}"


def memory_floats(ctx, strategy):
    """The feature statistics, and the frozen encoder copy that ``distill_weight`` keeps."""
    return strategy.memory.size_in_floats() + model_floats(strategy.previous_encoder)


def oracle(ctx, strategy):
    """The paper protocol refits the classifier on real training images of every seen class."""
    return CLASSIFIER_PROTOCOLS["paper"] if strategy.classifier_protocol == "paper" else None
