"""i-CTRL in parts: :mod:`.config` (every option and default), :mod:`.step` (one step of the game,
a pure function), :mod:`.update` (the two players' moves as an Avalanche update type),
:mod:`.plugins` (the feature memory, the replay, distillation, TensorBoard summaries) and
:mod:`.strategy` (``ICTRL``, their wiring)."""

from .config import CLASSIFIER_PROTOCOLS, PUBLISHED, RETENTION, ICTRLConfig
from .step import ClassMasks, Replay, StepResult, game_step


def __getattr__(name):
    # ICTRL pulls in Avalanche (~5 s to import): load it only when asked for.
    if name == "ICTRL":
        from .strategy import ICTRL
        return ICTRL
    raise AttributeError(name)


__all__ = ["ICTRL", "ICTRLConfig", "PUBLISHED", "RETENTION", "CLASSIFIER_PROTOCOLS", "game_step", "Replay",
           "ClassMasks", "StepResult"]
