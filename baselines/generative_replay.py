"""Deep Generative Replay (Shin et al. 2017) with Avalanche's MLP VAE as the generator."""

from avalanche.core import SupervisedPlugin
from avalanche.models import MlpVAE, VAE_loss
from avalanche.training import GenerativeReplay, VAETraining
from avalanche.training.plugins import GenerativeReplayPlugin
from torch.nn import CrossEntropyLoss
from torch.optim import Adam

from ._backbones import adam, classifier, model_floats, plugin

class SignedMlpVAE(MlpVAE):
    """Avalanche's VAE decodes through a sigmoid into [0, 1]; our images live in [−1, 1]."""

    def forward(self, x):
        x_hat, mean, logvar = super().forward((x + 1) / 2)
        return x_hat * 2 - 1, mean, logvar

    def generate(self, *args, **kwargs):
        return super().generate(*args, **kwargs) * 2 - 1


class GeneratorBudget(SupervisedPlugin):
    """The generator trains as many epochs on an experience as the classifier (the shared budget)."""

    def before_training_exp(self, strategy, **kwargs):
        strategy.generator_strategy.train_epochs = strategy.train_epochs


def build(ctx):
    model = classifier(ctx)
    generator = SignedMlpVAE(ctx.image_shape, nhid=2, n_classes=ctx.n_classes, device=ctx.device)
    generator_strategy = VAETraining(
        model=generator, optimizer=Adam(generator.parameters(), lr=1e-3, weight_decay=1e-4), criterion=VAE_loss,
        train_mb_size=ctx.batch_size, train_epochs=ctx.epochs, eval_mb_size=ctx.eval_batch_size, device=ctx.device,
        plugins=[GenerativeReplayPlugin()],
    )
    return GenerativeReplay(model=model, optimizer=adam(model, ctx), criterion=CrossEntropyLoss(),
                            generator_strategy=generator_strategy, plugins=[GeneratorBudget()], **ctx.template_kwargs())


def memory_budget(ctx, strategy):
    return "VAE generator, previous generator and classifier"


def memory_floats(ctx, strategy):
    """The generator, and the frozen copies of the previous generator (replays) and classifier
    (labels the replays) held while training. Avalanche keeps a second copy of the previous
    generator in the generator's own strategy; an implementation detail, not counted."""
    replay = plugin(strategy, GenerativeReplayPlugin)
    return (model_floats(strategy.generator_strategy.model) + model_floats(getattr(replay, "old_generator", None))
            + model_floats(getattr(replay, "old_model", None)))
