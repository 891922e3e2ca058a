"""A two-player update type for Avalanche, in the pattern of its own update types
(``avalanche.training.templates.update_type``: ``SGDUpdate``'s forward / backward / step and
``MetaUpdate``'s ``_inner_updates`` / ``_outer_update``): per minibatch, the encoder's move and then
the decoder's move, each framed by its own plugin hooks.

Hooks a plugin may define: ``before_encoder_update``, ``after_encoder_update``,
``before_decoder_update``, ``after_decoder_update`` (besides Avalanche's iteration and epoch hooks).
A strategy using it implements ``_encoder_update`` and ``_decoder_update`` and owns the optimisers.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from avalanche.core import BasePlugin, SupervisedPlugin
from avalanche.training.plugins.evaluation import EvaluationPlugin, default_evaluator
from avalanche.training.templates.base_sgd import BaseSGDTemplate
from avalanche.training.templates.observation_type import BatchObservation
from avalanche.training.templates.problem_type import SupervisedProblem
from avalanche.training.utils import trigger_plugins
from torch.nn import CrossEntropyLoss


class TwoPlayerUpdate:
    """``training_epoch`` of a two-player game: encoder move, then decoder move, on every minibatch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def training_epoch(self, **kwargs):
        for self.mbatch in self.dataloader:
            if self._stop_training:
                break
            self._unpack_minibatch()
            self._before_training_iteration(**kwargs)
            self._before_encoder_update(**kwargs)
            self._encoder_update(**kwargs)
            self._after_encoder_update(**kwargs)
            self._before_decoder_update(**kwargs)
            self._decoder_update(**kwargs)
            self._after_decoder_update(**kwargs)
            self._after_training_iteration(**kwargs)

    def _before_encoder_update(self, **kwargs):
        trigger_plugins(self, "before_encoder_update", **kwargs)

    def _encoder_update(self, **kwargs):
        raise NotImplementedError

    def _after_encoder_update(self, **kwargs):
        trigger_plugins(self, "after_encoder_update", **kwargs)

    def _before_decoder_update(self, **kwargs):
        trigger_plugins(self, "before_decoder_update", **kwargs)

    def _decoder_update(self, **kwargs):
        raise NotImplementedError

    def _after_decoder_update(self, **kwargs):
        trigger_plugins(self, "after_decoder_update", **kwargs)


class TwoPlayerTemplate(BatchObservation, SupervisedProblem, TwoPlayerUpdate, BaseSGDTemplate):
    """A supervised template whose update is :class:`TwoPlayerUpdate` (as Avalanche composes
    ``SupervisedMetaLearningTemplate`` from ``MetaUpdate``); same arguments as ``SupervisedTemplate``.
    ``optimizer`` is the first player's (the encoder's); the strategy keeps the second's. The
    criterion only scores evaluation minibatches (Avalanche's loss metrics); the game has its own."""

    PLUGIN_CLASS = SupervisedPlugin

    def __init__(self, *, model, optimizer, criterion=CrossEntropyLoss(), train_mb_size: int = 1, train_epochs: int = 1,
                 eval_mb_size: Optional[int] = 1, device="cpu", plugins: Optional[Sequence[BasePlugin]] = None,
                 evaluator: Union[EvaluationPlugin, callable] = default_evaluator, eval_every=-1, peval_mode="epoch",
                 **kwargs):
        kwargs.update(model=model, optimizer=optimizer, criterion=criterion, train_mb_size=train_mb_size,
                      train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device, plugins=plugins,
                      evaluator=evaluator, eval_every=eval_every, peval_mode=peval_mode)
        super().__init__(**kwargs)
