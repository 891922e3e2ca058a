"""i-CTRL (Tong et al., ICLR 2023) as an Avalanche strategy: the wiring of its parts.

One fixed-capacity autoencoder (f, g). Each minibatch plays one step of the constrained game
(:func:`.step.game_step`) through a two-player update (:mod:`.update`); old classes live only as
feature statistics (:class:`.plugins.FeatureMemoryPlugin`), replayed through anchors decoded at the
start of each experience (:class:`.plugins.AnchorReplayPlugin`); classification is nearest
subspace on features. The recipe's parts (:mod:`.recipe`) join the step, the plugins and the
phases of an experience. Every option is a field of :class:`.config.ICTRLConfig`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import defaultdict
from contextlib import contextmanager

import torch
from avalanche.evaluation.metric_results import MetricValue
from avalanche.training.plugins.evaluation import default_evaluator
from torch import Tensor, nn
from torch.distributed import get_rank, get_world_size
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .. import distributed
from ..rate import rate_reduction
from .config import EVAL_MB_SIZE, FIELDS, TRAIN_EPOCHS, TRAIN_MB_SIZE, ICTRLConfig
from .plugins import AnchorReplayPlugin, ExperienceSummaryPlugin, FeatureMemoryPlugin
from .recipe import DecoderFinish, DecoderWarmup, EncoderRestart, FirstSteps, step_parts
from .step import ClassMasks, Replay, StepResult, drawing_step, game_step, warmup_step
from .update import TwoPlayerTemplate


class ICTRL(TwoPlayerTemplate):
    """Incremental closed-loop transcription.

    ``ICTRL(encoder=f, decoder=g, **options)`` with any field of :class:`ICTRLConfig` as an option
    (or ``config=ICTRLConfig(...)``); ``ICTRL(**PUBLISHED, ...)`` plays the paper's game. The other
    arguments are Avalanche's: ``train_epochs``, ``train_mb_size``, ``eval_mb_size``, ``device``,
    ``evaluator``, ``plugins``, ``eval_every``; ``num_classes`` fixes the number of class ids
    (default: grown from the experiences' classes). Every experience trains ``train_epochs``; to give
    the first one more, set ``strategy.train_epochs`` before each ``train`` call, as the harness's
    runner does with the budget's ``first_epochs``.
    """

    def __init__(self, *, encoder: nn.Module, decoder: nn.Module, config: ICTRLConfig | None = None,
                 train_epochs: int = TRAIN_EPOCHS, train_mb_size: int = TRAIN_MB_SIZE,
                 eval_mb_size: int = EVAL_MB_SIZE, device="cpu", evaluator=default_evaluator, plugins=None,
                 eval_every: int = -1, num_classes: int | None = None, **options):
        unknown = sorted(set(options) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown ICTRL options {unknown}; known: {', '.join(FIELDS)}")
        self.config = config = dataclasses.replace(config or ICTRLConfig(), **options)
        config.check_feature_dim(getattr(encoder, "feature_dim", None))
        self.memory_plugin = FeatureMemoryPlugin(config)
        self.replay_plugin = AnchorReplayPlugin(config)
        own = [self.memory_plugin, self.replay_plugin, ExperienceSummaryPlugin(config.images_per_class)]
        own += [EncoderRestart(config)] if config.encoder_restart else []
        self.parts = step_parts(config)
        self.warmup, self.finish, self.first_steps = DecoderWarmup(config), DecoderFinish(config), FirstSteps(config)
        model = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
        super().__init__(
            model=model, optimizer=torch.optim.Adam(encoder.parameters(), lr=config.lr, betas=config.betas),
            train_mb_size=train_mb_size, train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device,
            plugins=own + list(plugins or []), evaluator=evaluator, eval_every=eval_every,
        )
        self.decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr, betas=config.betas)
        self.multiplier = config.gamma  # μ of the constraint; grows with the augmented Lagrangian
        self.rho = config.rho if config.constraint == "augmented_lagrangian" else 0.0
        self.mixed_precision = (torch.device(device).type == "cuda") if config.mixed_precision is None \
            else config.mixed_precision
        self.num_classes = num_classes or 0
        self.batch_size = train_mb_size  # the batch of every experience but a short first one (first_steps)
        self.shuffle_seed = torch.initial_seed()  # the run's seed: a distributed run's shards follow it
        self.masks: ClassMasks | None = None
        self.last_epoch_terms: dict[str, float] = {}
        self._epoch_sums: dict[str, Tensor] = defaultdict(float)
        self._epoch_index = 0

    # ------------------------------------------------------------------ parts
    @property
    def encoder(self) -> nn.Module:
        return self.model["encoder"]

    @property
    def decoder(self) -> nn.Module:
        return self.model["decoder"]

    @property
    def memory(self):
        return self.memory_plugin.memory

    @property
    def classifier(self):
        return self.memory_plugin.classifier

    @property
    def classifier_protocol(self) -> str:
        return self.config.classifier

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    @contextmanager
    def evaluating(self):
        """Eval mode (and bf16 autocast on CUDA) for the block; the model's previous mode afterwards."""
        was_training = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                yield
        finally:
            self.model.train(was_training)

    def decode(self, Z: Tensor) -> Tensor:
        """g(Z) in chunks of ``eval_mb_size`` (call inside :meth:`evaluating`)."""
        return torch.cat([self.decoder(chunk).float() for chunk in Z.split(self.eval_mb_size)])

    def encode(self, X: Tensor) -> Tensor:
        """f(X) in chunks of ``eval_mb_size`` (call inside :meth:`evaluating`)."""
        return torch.cat([self.encoder(chunk).float() for chunk in X.split(self.eval_mb_size)])

    # ------------------------------------------------------------------ Avalanche hooks
    def make_optimizer(self, **kwargs):
        """Two players, two Adam optimisers built in ``__init__``, their moments kept across experiences
        (the reference code; :class:`.recipe.EncoderRestart` resets f's): Avalanche's update of one
        shared optimiser is skipped."""

    def make_train_dataloader(self, **kwargs):
        """Avalanche's loader; in a distributed run, this process's shard of every batch instead: a
        ``DistributedSampler`` (the run's seed) and batches of ``train_mb_size / N``, so that the N
        shards of a step make one global batch."""
        if not distributed.active():
            return super().make_train_dataloader(**kwargs)
        world = get_world_size()
        if self.train_mb_size % world:
            raise ValueError(f"the batch of {self.train_mb_size} does not split over {world} processes")
        dataset = self.adapted_dataset
        sampler = DistributedSampler(dataset, num_replicas=world, rank=get_rank(), shuffle=True,
                                     seed=self.shuffle_seed)
        self.dataloader = DataLoader(dataset, batch_size=self.train_mb_size // world, sampler=sampler,
                                     collate_fn=getattr(dataset, "collate_fn", None))

    def _before_training_epoch(self, **kwargs):
        sampler = getattr(self.dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self._epoch_index)  # another shuffle every epoch, the same on every process
        super()._before_training_epoch(**kwargs)

    def _before_training_exp(self, **kwargs):
        classes = [int(c) for c in self.experience.classes_in_this_experience]
        benchmark_classes = getattr(getattr(self.experience, "benchmark", None), "n_classes", 0) or 0
        self.num_classes = max(self.num_classes, benchmark_classes, max(classes) + 1)
        old = set(self.memory.classes) - set(classes)
        self.masks = ClassMasks(self._class_mask(classes), self._class_mask(old))
        self.train_mb_size = self._experience_batch(len(self.experience.dataset))
        super()._before_training_exp(**kwargs)  # the loader, then the plugins: memory to the device, anchors, f_prev

    def _experience_batch(self, n_images: int) -> int:
        """The batch of the experience about to train: ``batch_size``, or the first experience's
        (:class:`.recipe.FirstSteps`; in a distributed run, a multiple of the process count)."""
        batch = self.first_steps.batch(self.batch_size, n_images, self.train_epochs, first=not len(self.memory))
        if batch != self.batch_size and distributed.active():
            batch = max(get_world_size(), batch - batch % get_world_size())
        return batch

    def _class_mask(self, classes) -> Tensor:
        mask = torch.zeros(self.num_classes, dtype=torch.bool, device=self.device)
        mask[list(classes)] = True
        return mask

    def _encoder_update(self, **kwargs):
        """The encoder's move: with ``alternate``, on its own forward with X̂ decoded without
        gradient; else the step's one forward gives both players' gradients, and the encoder steps.
        While the encoder holds (``decoder_finish``) only the decoder's gradient is taken."""
        self.optimizer.zero_grad(set_to_none=True)
        self.decoder_optimizer.zero_grad(set_to_none=True)
        holds = self._encoder_holds()
        for _ in range(0 if holds else self.config.encoder_steps - 1):
            self._rate_only_encoder_step()
        if holds:
            result = self._play()
            self._record(result)
            self._assign_gradients(None, result.decoder_loss)
        elif self.config.alternate:
            self._assign_gradients(self._play(decoder_grad=False).encoder_loss, None)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        else:
            result = self._play()
            self._record(result)
            self._assign_gradients(result.encoder_loss, result.decoder_loss)
            self.optimizer.step()

    def _decoder_update(self, **kwargs):
        """The decoder's move: with ``alternate``, on a fresh forward against the updated encoder
        (gradient through f into g); else with the gradient of the encoder's forward."""
        if self.config.alternate and not self._encoder_holds():
            result = self._play()
            self._record(result)
            self._assign_gradients(None, result.decoder_loss)
        self.decoder_optimizer.step()

    def _play(self, decoder_grad: bool = True) -> StepResult:
        replay = self.replay_plugin.draw(self, distributed.gather(self.mb_y))  # drawn for the global batch …
        if replay is not None and distributed.active():  # … and this process takes its share
            replay = Replay(*(None if t is None else distributed.shard(t)
                              for t in (replay.codes, replay.labels, replay.images, replay.targets)))
        if self._encoder_holds():
            return drawing_step(self.encoder, self.decoder, self.mb_x, replay, self.config, autocast=self._autocast,
                                gather=distributed.gather)
        if self._decoder_warming_up():
            return warmup_step(self.encoder, self.decoder, self.mb_x, self.mb_y, self.config, autocast=self._autocast,
                               gather=distributed.gather)
        return game_step(self.encoder, self.decoder, self.mb_x, self.mb_y, replay, self.masks, self.config,
                         self.multiplier, rho=self.rho, parts=self.parts, decoder_grad=decoder_grad,
                         autocast=self._autocast, gather=distributed.gather)

    def _decoder_warming_up(self) -> bool:
        return self.warmup.active(self)

    def _encoder_holds(self) -> bool:
        return self.finish.active(self)

    @property
    def step_phase(self) -> str:
        """What the next step plays, for the harness's FLOPs counter (which counts the first step of
        each): the decoder's warm-up, the game, or the finish in which the encoder holds."""
        if self._decoder_warming_up():
            return "decoder warm-up"
        return "decoder finish" if self._encoder_holds() else "game"

    def _record(self, result: StepResult) -> None:
        """The step's output for Avalanche's metrics, and its terms into the epoch's means."""
        self.mb_output = self.scores(result.features.detach())
        self.loss = result.encoder_loss.detach()
        for name, value in result.terms.items():
            self._epoch_sums[name] = self._epoch_sums[name] + value
        self._epoch_sums["steps"] = self._epoch_sums["steps"] + 1

    def _assign_gradients(self, encoder_loss: Tensor | None, decoder_loss: Tensor | None) -> None:
        """Encoder: ∇_f of (−S + C); decoder: ∇_g of (S + C). A ``None`` loss leaves that player alone."""
        for module, loss, retain in ((self.encoder, encoder_loss, decoder_loss is not None),
                                     (self.decoder, decoder_loss, False)):
            if loss is None:
                continue
            params = [p for p in module.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
            for p, grad in zip(params, grads):
                p.grad = grad
            distributed.average_gradients(params)

    def _rate_only_encoder_step(self) -> None:
        """An extra encoder step that maximises ΔR(f(X) | y) alone."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            Z = self.encoder(self.mb_x)
        (-rate_reduction(distributed.gather(Z), distributed.gather(self.mb_y), self.config.eps2,
                         self.num_classes)).backward()
        distributed.average_gradients(self.encoder.parameters())
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _after_training_epoch(self, **kwargs):
        steps = float(self._epoch_sums.pop("steps", 0))
        means = {name: float(total) / max(steps, 1) for name, total in self._epoch_sums.items()}
        self._epoch_sums = defaultdict(float)
        if self.rho and self.masks.old.any():
            self.multiplier += self.rho * means.get("constraint_old", 0.0)
        means["multiplier"] = self.multiplier
        self.last_epoch_terms = means
        for name, value in means.items():
            self.publish(f"ctrl/{name}", value, self._epoch_index)
        self._epoch_index += 1
        super()._after_training_epoch(**kwargs)

    def forward(self):
        with self._autocast():
            Z = self.encoder(self.mb_x)
        return self.scores(Z)

    def scores(self, Z: Tensor) -> Tensor:
        """The classifier's scores of every class id."""
        return self.classifier.scores(Z, self.num_classes)

    # ------------------------------------------------------------------ checkpointing
    def extra_state(self) -> dict:
        """What a between-experience checkpoint needs beyond the model, the encoder's optimiser and
        the plugins."""
        return {"decoder_optimizer": self.decoder_optimizer.state_dict(), "multiplier": self.multiplier,
                "epoch_index": self._epoch_index, "num_classes": self.num_classes}

    def load_extra_state(self, state: dict) -> None:
        self.decoder_optimizer.load_state_dict(state["decoder_optimizer"])
        self.multiplier, self._epoch_index = state["multiplier"], state["epoch_index"]
        self.num_classes = state["num_classes"]

    # ------------------------------------------------------------------ features and the memory
    @torch.no_grad()
    def features(self, dataset) -> tuple[Tensor, Tensor]:
        """f(X) and labels of a whole dataset, in eval mode (in a distributed run each process encodes
        a share and all get every row, in the dataset's order of shares)."""
        if distributed.active():
            dataset = Subset(dataset, range(get_rank(), len(dataset), get_world_size()))
        Zs, ys = [], []
        with self.evaluating():
            for batch in DataLoader(dataset, batch_size=self.eval_mb_size, shuffle=False):
                Zs.append(self.encoder(batch[0].to(self.device)).float())
                ys.append(batch[1].to(self.device))
        Z, y = torch.cat(Zs), torch.cat(ys)
        return distributed.gather_rows(Z), distributed.gather_rows(y)

    @torch.no_grad()
    def decode_memory(self, per_class: int) -> tuple[Tensor, Tensor]:
        """What the memory replays: g(z) for ``per_class`` fresh prototypes z of every stored class,
        in eval mode; returns (images, labels)."""
        Z, y = self.memory.sample(per_class)
        with self.evaluating():
            return self.decode(Z), y

    def publish(self, name: str, value, x: int) -> None:
        """A scalar or image for the evaluator's loggers (TensorBoard)."""
        if self.evaluator is not None:
            self.evaluator.publish_metric_value(MetricValue(self, name, value, x))


def _with_options(init):
    """``init``'s signature with every ICTRLConfig field as a keyword argument in place of
    ``**options``: what ``help(ICTRL)`` shows, and what Avalanche checks keyword arguments against."""
    signature = inspect.signature(init)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for name, f in FIELDS.items()]
    return signature.replace(parameters=params)


ICTRL.__init__.__signature__ = _with_options(ICTRL.__init__)
