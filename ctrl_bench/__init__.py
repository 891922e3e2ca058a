"""ctrl-bench: closed-loop transcription (CTRL, i-CTRL) with CRATE networks, for class-incremental benchmarks."""

from .autoencoder import build_autoencoder
from .game import GameTerms, constraint_penalty, game_terms, shared_objective
from .memory import FeatureMemory
from .rate import (NonFiniteRateError, class_coding_rate, coding_rate, pairwise_rate_reduction,
                   rate_reduction)
from .subspace import NearestSubspaceClassifier


def __getattr__(name):
    # ICTRL pulls in Avalanche (~5 s to import): load it only when asked for.
    if name == "ICTRL":
        from .ictrl.strategy import ICTRL
        return ICTRL
    raise AttributeError(name)


__all__ = ["build_autoencoder", "coding_rate", "class_coding_rate", "rate_reduction", "pairwise_rate_reduction",
           "NonFiniteRateError", "GameTerms", "game_terms", "shared_objective", "constraint_penalty",
           "FeatureMemory", "NearestSubspaceClassifier", "ICTRL"]
