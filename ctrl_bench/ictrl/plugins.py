"""i-CTRL's state between experiences, as Avalanche plugins (the way ``ICaRL`` keeps its exemplars
and class means in ``_ICaRLPlugin``): the feature memory and its classifier, the replay of old
classes (anchors decoded at the start of an experience) and what TensorBoard shows after every experience. Each plugin reads the strategy it is attached to
(its encoder, decoder, masks) and keeps no reference to it."""

from __future__ import annotations

import math

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metric_results import TensorImage
from torch import Tensor

from .. import visuals
from ..memory import FeatureMemory, drift_map
from ..subspace import NearestSubspaceClassifier
from .config import ICTRLConfig
from .step import Replay


def per_class_choice(y: Tensor, per_class: int, device) -> Tensor:
    """Indices of ``per_class`` random entries of every class in ``y`` (with replacement if short)."""
    picks = []
    for c in torch.unique(y):
        members = (y == c).nonzero().squeeze(1)
        picks.append(members[torch.randint(len(members), (per_class,), device=members.device)])
    return torch.cat(picks).to(device)


class FeatureMemoryPlugin(SupervisedPlugin, supports_distributed=True):
    """The memory of every learned class (mean, r principal directions and their variances of its
    features, never an image) and the classifier built from it. After each experience, the new
    classes' statistics are computed from f on that experience's training data and the classifier is
    refitted: from the memory alone (``classifier="memory"``), or, for the paper's protocol, on real
    training images of every seen class (an oracle)."""

    def __init__(self, config: ICTRLConfig):
        super().__init__()
        self.config = config
        self.memory = FeatureMemory(config.n_directions, config.n_prototypes)
        self.classifier = NearestSubspaceClassifier(noise=config.classifier_noise, class_spread=config.class_spread)
        self.seen_train_datasets = []  # kept only for classifier="paper"
        self.features_at_start: Tensor | None = None  # with drift_map: f_start of the experience's images

    @torch.no_grad()
    def before_training_exp(self, strategy, **kwargs):
        self.memory.to(strategy.device)
        self.features_at_start = None
        if self.config.drift_map and len(self.memory):
            self.features_at_start = strategy.features(strategy.experience.dataset.eval())[0]

    @torch.no_grad()
    def after_training_exp(self, strategy, **kwargs):
        current = set(int(c) for c in strategy.experience.classes_in_this_experience)
        dataset = strategy.experience.dataset.eval()
        Z_new, y_new = strategy.features(dataset)
        if self.features_at_start is not None:
            self._follow_drift(strategy, current, Z_new)
            self.features_at_start = None
        self.memory.store(Z_new, y_new)
        if self.config.classifier == "paper":
            self.seen_train_datasets.append(dataset)
            feats = [strategy.features(ds) for ds in self.seen_train_datasets]
            self.classifier.fit(torch.cat([z for z, _ in feats]), torch.cat([y for _, y in feats]),
                                self.config.n_components)
        else:
            self.fit_from_memory()

    def _follow_drift(self, strategy, current: set[int], Z_new: Tensor) -> None:
        """DriftMap (:mod:`.recipe`): move the old classes' statistics by the linear map of f's drift over
        the experience, fitted on the new images and the anchors, encoded at its start and by the final f.
        The stored statistics describe features of f as it was; without it they fall behind f."""
        labels = self.memory.labels
        old = ~torch.isin(labels, torch.tensor(sorted(current), device=labels.device))
        before, after = [self.features_at_start], [Z_new]
        anchors = strategy.replay_plugin.anchors
        if anchors is not None:
            with strategy.evaluating():
                after.append(strategy.encode(anchors[0]))
            before.append(anchors[3])
        W = drift_map(torch.cat(before), torch.cat(after), self.config.drift_map)
        self.memory.map_classes(labels[old], W)

    def fit_from_memory(self) -> None:
        """The memory-only classifier: every stored class's mean, its first n_components directions,
        their variances and its spread off them."""
        k = min(self.config.n_components, self.memory.n_directions)
        self.classifier.set_subspaces(self.memory.labels, self.memory.means, self.memory.directions[:, :k],
                                      self.memory.variances[:, :k], self._spread(k))

    def _spread(self, k: int):
        """Each class's mean variance off its first k stored directions: its stored residual, plus the
        variances of the directions the classifier leaves out."""
        d = self.memory.means.shape[1]
        left_out = self.memory.variances[:, k:].sum(1)
        r = self.memory.n_directions
        return (self.memory.residuals * (d - r) + left_out) / (d - k)


class AnchorReplayPlugin(SupervisedPlugin, supports_distributed=True):
    """What the old classes contribute to each step. At the start of an experience with old classes,
    ``anchors_per_class`` images per old class are decoded from memory prototypes and held fixed (the
    reference code's anchors), with their features under the encoder as it starts: (X_M, Z_M, y_M,
    f_prev(X_M)). Each step then draws :meth:`draw`, from the anchors when there are any, else fresh
    prototypes: round(``replay_ratio`` · B) codes for a batch of B new images, spread evenly over the
    old classes (so a step's cost does not grow with their number), or, with ``replay_ratio=None``
    (the paper), as many of each old class as a new class has in the batch."""

    def __init__(self, config: ICTRLConfig):
        super().__init__()
        self.config = config
        self.anchors: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @torch.no_grad()
    def before_training_exp(self, strategy, **kwargs):
        self.anchors = None
        if not (self.config.anchors_per_class and strategy.masks.old.any()):
            return
        Z, y = strategy.memory.sample(self.config.anchors_per_class)
        keep = strategy.masks.old[y]
        Z, y = Z[keep], y[keep]
        with strategy.evaluating():
            X = strategy.decode(Z)
            T = strategy.encode(X)
        self.anchors = (X, Z, y, T)

    def after_training_exp(self, strategy, **kwargs):
        self.anchors = None  # decoded again, from the updated memory, when the next experience starts

    @torch.no_grad()
    def draw(self, strategy, y: Tensor) -> Replay | None:
        """The replay of one step whose new batch has labels ``y``; None without old classes."""
        if not (len(strategy.memory) and strategy.masks.old.any()):
            return None
        total = replay_count(self.config.replay_ratio, len(y))
        if total is not None:
            per_class = math.ceil(total / int(strategy.masks.old.sum()))
        else:
            per_class = math.ceil(len(y) / int(strategy.masks.new.sum()))
        if self.anchors is not None:
            X_M, Z_M, y_M, T_M = self.anchors
            pick = keep_total(per_class_choice(y_M, per_class, y.device), total)
            return Replay(Z_M[pick], y_M[pick], X_M[pick], T_M[pick])
        Z_old, y_old = strategy.memory.sample(per_class)
        pick = keep_total(strategy.masks.old[y_old].nonzero().squeeze(1), total)
        return Replay(Z_old[pick], y_old[pick])


def replay_count(ratio: float | None, batch: int) -> int | None:
    """The replayed codes of a step with ``batch`` new images: round(ratio · batch), at least 1,
    whatever the number of old classes (None with the paper's per-class replay)."""
    return None if ratio is None else max(1, round(ratio * batch))


def keep_total(picks: Tensor, total: int | None) -> Tensor:
    """``total`` of ``picks`` at random (all of them where ``total`` is None or not smaller): the
    ⌈total / K⌉ drawn of each of K classes, cut to exactly ``total``."""
    if total is None or total >= len(picks):
        return picks
    return picks[torch.randperm(len(picks), device=picks.device)[:total]]


def rng_neutral(device):
    """A block that draws random numbers without moving the run's RNG (what it shows or scores must
    not change what it trains next)."""
    device = torch.device(device)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


class ExperienceSummaryPlugin(SupervisedPlugin, supports_distributed=True):
    """What TensorBoard shows after every experience: the memory's size, images decoded from every
    class's memory (``replay/class_<c>``, ``replay/all_classes``), real images of the experience above
    their reconstructions (``reconstruction/current_classes``) and |Z Zᵀ| of replayed features. It
    draws from the memory without moving the run's RNG."""

    def __init__(self, images_per_class: int):
        super().__init__()
        self.images_per_class = images_per_class

    def after_training_exp(self, strategy, **kwargs):
        with rng_neutral(strategy.device):
            self._publish(strategy)

    @torch.no_grad()
    def _publish(self, strategy):
        x, memory = strategy.clock.train_exp_counter, strategy.memory
        strategy.publish("memory/floats", memory.size_in_floats(), x)
        strategy.publish("memory/classes", len(memory), x)
        if strategy.evaluator is None:
            return
        m = self.images_per_class
        replay, labels = strategy.decode_memory(m)
        for c in memory.classes:
            strategy.publish(f"replay/class_{c}", TensorImage(visuals.image_grid(replay[labels == c], nrow=m)), x)
        strategy.publish("replay/all_classes", TensorImage(visuals.replay_grid(replay, labels)), x)
        dataset = strategy.experience.dataset.eval()
        targets = torch.as_tensor(list(dataset.targets))
        picked = torch.cat([(targets == c).nonzero().squeeze(1)[:m] for c in torch.unique(targets)])
        X_real = torch.stack([dataset[int(i)][0] for i in picked]).to(strategy.device)
        with strategy.evaluating():
            recon = strategy.decoder(strategy.encoder(X_real)).float()
        strategy.publish("reconstruction/current_classes",
                         TensorImage(visuals.reconstruction_grid(X_real, recon, targets[picked])), x)
        Z_heat, y_heat = memory.sample(32)
        strategy.publish("features/abs_ZZt_replay", TensorImage(visuals.similarity_heatmap(Z_heat, y_heat)), x)
