"""i-CTRL (Tong et al., ICLR 2023) as an Avalanche strategy.

One fixed-capacity autoencoder (f, g). Old classes live only as feature statistics in a
:class:`~ctrl_bench.memory.FeatureMemory`; each experience plays the constrained rate-reduction
game of :mod:`ctrl_bench.game`; classification is nearest subspace on features.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from contextlib import contextmanager

import torch
from avalanche.evaluation.metric_results import MetricValue, TensorImage
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import freeze_everything
from torch import Tensor, nn
from torch.utils.data import DataLoader

from . import visuals
from .game import constraint_penalty, game_terms, shared_objective
from .memory import FeatureMemory
from .rate import rate_reduction
from .subspace import NearestSubspaceClassifier

CONSTRAINT_MODES = ("penalty", "augmented_lagrangian")
CLASSIFIER_PROTOCOLS = {
    "memory": "memory-only (nearest subspace built from the stored feature statistics)",
    "paper": "paper protocol (nearest subspace fitted on features of the real training images of every seen class)",
}


def cosine_drift(Z: Tensor, Z_before: Tensor) -> Tensor:
    """How far f has moved fixed images: mean_i (1 − ⟨z_i, b_i⟩), with z_i their features now and
    b_i = f_prev(x_i) under the encoder that started the experience (unit vectors). Used for the
    anchors (decoded old-class images) and, with ``distill_weight``, for the new batch."""
    return (1 - (Z.float() * Z_before.float()).sum(1)).mean()


def pixel_reconstruction_error(X_hat: Tensor, X: Tensor) -> Tensor:
    """Mean squared pixel error ‖g(z) − x‖² / (C·H·W), averaged over the batch (images in [−1, 1])."""
    return (X_hat.float() - X.float()).pow(2).mean()


def _per_class_choice(y: Tensor, per_class: int, device) -> Tensor:
    """Indices of ``per_class`` random entries of every class in ``y`` (with replacement if short)."""
    picks = []
    for c in torch.unique(y):
        members = (y == c).nonzero().squeeze(1)
        picks.append(members[torch.randint(len(members), (per_class,), device=members.device)])
    return torch.cat(picks).to(device)


# The paper's game settings (Tong et al. 2023, MNIST; the CIFAR-10 differences are in the presets).
# Every departure the defaults of ICTRL make from them is one named option, listed in RETENTION.
PUBLISHED = dict(lr=1e-4, new_weight=10.0, gamma=1.0, alternate=True, n_directions=12, n_components=15, replay_per_class=None,
                 encoder_discriminates=True, anchors_per_class=0, anchor_weight=0.0, pixel_weight=0.0,
                 classifier_noise=0.0, distill_weight=0.0)
RETENTION = {
    "encoder_discriminates": "true: the encoder also maximises λ Σ_new ΔR(Z_j, Ẑ_j), learning to tell real images from "
                             "their decodings (the paper); false (default): only the decoder minimises it",
    "anchors_per_class": "old-class images decoded from memory at the start of each experience and held fixed "
                         "(default 128; 0: none, the paper)",
    "anchor_weight": "weight of the cosine drift of the anchors' features from their start-of-experience features "
                     "(default 1000; 0: the paper)",
    "pixel_weight": "weight of g's pixel error on the new batch (g(f(x)) vs x) and on the anchors (vs themselves) "
                    "(default 100; 0: the paper)",
    "distill_weight": "weight of the cosine drift of the new batch's features from their features under a frozen copy "
                      "of f taken at the start of the experience (feature distillation on new images; default 0: "
                      "none, the paper)",
    "classifier_noise": "s² > 0: classify by each class's probabilistic-PCA likelihood (its stored mean, directions "
                        "and variances, plus s² in every direction) instead of the distance to its subspace "
                        "(default 0: nearest subspace, the paper)",
}


class ICTRL(SupervisedTemplate):
    """Incremental closed-loop transcription.

    Game options: ``eps2`` (ε²), ``lr`` and ``betas`` (Adam, both players), ``new_weight`` (λ on
    Σ_new ΔR(Z_j, Ẑ_j), in every experience: λ = 1 on the first is plain CTRL),
    ``constraint`` ("penalty": fixed γ; "augmented_lagrangian": multiplier μ, starting at γ, grows
    by ρ·ΔR(Z_old, Ẑ_old) after every epoch), ``encoder_steps`` (k ≥ 1: k − 1 extra encoder steps
    maximising ΔR(Z) alone, then one step of both players, as the reference CIFAR-10 code),
    ``alternate`` (True, the reference code: the encoder steps, then the decoder steps against the
    updated encoder from a fresh forward; False: both players step on the gradients of one forward,
    one gradient-free decoder pass cheaper, with the decoder answering the encoder of the step before),
    ``first_epochs`` (epochs of the first experience; default ``train_epochs``).
    Memory options: ``n_directions`` (r), ``n_prototypes`` (per class), ``replay_per_class``
    (prototypes per old class in each step; None: as many as a new class has in the batch),
    ``review`` (refresh old classes' statistics through f∘g after each experience).
    Retention options (not in the paper; ``RETENTION`` says what each changes, ``PUBLISHED`` holds
    the paper's values): ``encoder_discriminates``, ``anchors_per_class``, ``anchor_weight``,
    ``pixel_weight``, ``distill_weight``, ``classifier_noise``.
    Classifier: ``classifier`` ("memory" or "paper", see ``CLASSIFIER_PROTOCOLS``), ``n_components``.

    The defaults are the settings that keep every class on the MNIST subset with a tiny CRATE pair
    (README, ablation); ``ICTRL(**PUBLISHED, ...)`` plays the paper's game.
    """

    def __init__(
        self, *, encoder: nn.Module, decoder: nn.Module, train_epochs: int = 30, train_mb_size: int = 256,
        eval_mb_size: int = 1024, device="cpu", evaluator=default_evaluator, plugins=None, eval_every: int = -1,
        eps2: float = 1.0, lr: float = 1e-3, betas=(0.5, 0.999), new_weight: float = 1.0,
        constraint: str = "penalty", gamma: float = 1.0, rho: float = 1.0, encoder_steps: int = 1,
        alternate: bool = False, first_epochs: int | None = None, n_directions: int = 16, n_prototypes: int = 360,
        replay_per_class: int | None = 64, review: bool = False, classifier: str = "memory", n_components: int = 16,
        encoder_discriminates: bool = False, anchors_per_class: int = 128, anchor_weight: float = 1000.0,
        pixel_weight: float = 100.0, distill_weight: float = 0.0, classifier_noise: float = 0.0,
        mixed_precision: bool | None = None, num_classes: int | None = None, images_per_class: int = 8,
    ):
        if constraint not in CONSTRAINT_MODES:
            raise ValueError(f"unknown constraint mode {constraint!r}; choose one of {', '.join(CONSTRAINT_MODES)}")
        if classifier not in CLASSIFIER_PROTOCOLS:
            raise ValueError(f"unknown classifier {classifier!r}; choose one of {', '.join(CLASSIFIER_PROTOCOLS)}")
        feature_dim = getattr(encoder, "feature_dim", None)
        for name, value in (("n_directions", n_directions), ("n_components", n_components)):
            if feature_dim is not None and value > feature_dim:
                raise ValueError(f"{name}={value} is larger than the feature dimension {feature_dim}")
        for name, value in (("anchors_per_class", anchors_per_class), ("anchor_weight", anchor_weight),
                            ("pixel_weight", pixel_weight), ("distill_weight", distill_weight),
                            ("classifier_noise", classifier_noise)):
            if value < 0:
                raise ValueError(f"{name} must be ≥ 0 (0 turns it off), got {value}")
        if encoder_steps < 1:
            raise ValueError(f"encoder_steps must be at least 1, got {encoder_steps}")
        if eps2 <= 0:
            raise ValueError(f"eps2 (ε²) must be positive, got {eps2}")
        model = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
        super().__init__(
            model=model, optimizer=torch.optim.Adam(encoder.parameters(), lr=lr, betas=betas),
            train_mb_size=train_mb_size, train_epochs=train_epochs, eval_mb_size=eval_mb_size, device=device,
            plugins=plugins, evaluator=evaluator, eval_every=eval_every,
        )
        self.decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=lr, betas=betas)
        self.eps2, self.new_weight, self.constraint = eps2, new_weight, constraint
        self.multiplier, self.rho = gamma, (rho if constraint == "augmented_lagrangian" else 0.0)
        self.encoder_steps, self.replay_per_class, self.review = encoder_steps, replay_per_class, review
        self.alternate = alternate
        self.epochs, self.first_epochs = train_epochs, first_epochs
        self.encoder_discriminates = encoder_discriminates
        self.anchors_per_class, self.anchor_weight, self.pixel_weight = anchors_per_class, anchor_weight, pixel_weight
        self._anchors: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # (X_M, Z_M, y_M, f_prev(X_M))
        self.distill_weight = distill_weight
        self.previous_encoder: nn.Module | None = None  # frozen f_prev, only while distill_weight > 0
        self.classifier_protocol, self.n_components = classifier, n_components
        self.mixed_precision = (torch.device(device).type == "cuda") if mixed_precision is None else mixed_precision
        self.num_classes = num_classes or 0
        self.images_per_class = images_per_class
        self.memory = FeatureMemory(n_directions, n_prototypes)
        self.classifier = NearestSubspaceClassifier(noise=classifier_noise)
        self._seen_train_datasets = []  # kept only for classifier="paper"
        self._epoch_sums: dict[str, Tensor] = defaultdict(float)
        self._epoch_index = 0

    @property
    def encoder(self) -> nn.Module:
        return self.model["encoder"]

    @property
    def decoder(self) -> nn.Module:
        return self.model["decoder"]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    @contextmanager
    def _evaluating(self):
        """Eval mode (and bf16 autocast on CUDA) for the block; the model's previous mode afterwards."""
        was_training = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                yield
        finally:
            self.model.train(was_training)

    def _decode(self, Z: Tensor) -> Tensor:
        """g(Z) in eval-mode chunks of ``eval_mb_size`` (call inside ``_evaluating``)."""
        return torch.cat([self.decoder(chunk).float() for chunk in Z.split(self.eval_mb_size)])

    # ------------------------------------------------------------------ Avalanche hooks
    def make_optimizer(self, **kwargs):
        """Two players, two Adam optimisers built in ``__init__``; kept (state included) across
        experiences as in the reference code, so Avalanche's reset of one shared optimiser is skipped."""

    def _before_training_exp(self, **kwargs):
        classes = [int(c) for c in self.experience.classes_in_this_experience]
        benchmark_classes = getattr(getattr(self.experience, "benchmark", None), "n_classes", 0) or 0
        self.num_classes = max(self.num_classes, benchmark_classes, max(classes) + 1)
        self.memory.to(self.device)
        old = set(self.memory.classes) - set(classes)
        self._new_mask = self._class_mask(classes)
        self._old_mask = self._class_mask(old)
        self._n_new_classes = len(classes)
        first = not len(self.memory)
        self.train_epochs = self.first_epochs if (first and self.first_epochs) else self.epochs
        self._anchors = self._decode_anchors() if (self.anchors_per_class and self._old_mask.any()) else None
        self._anchor_pick = None
        self.previous_encoder = self._frozen_encoder() if (self.distill_weight and self._old_mask.any()) else None
        super()._before_training_exp(**kwargs)

    def _frozen_encoder(self) -> nn.Module:
        """f_prev: a gradient-free copy of the encoder as it starts the experience, in eval mode."""
        frozen = copy.deepcopy(self.encoder)
        freeze_everything(frozen)
        return frozen

    @torch.no_grad()
    def _decode_anchors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Old-class images X_M = g(Z_M) decoded once, at the start of the experience, from memory
        prototypes Z_M and held fixed during it (the reference code's anchors), with their features
        under the encoder as it starts the experience: (X_M, Z_M, y_M, f_prev(X_M))."""
        Z, y = self.memory.sample(self.anchors_per_class)
        keep = self._old_mask[y]
        Z, y = Z[keep], y[keep]
        with self._evaluating():
            X = self._decode(Z)
            T = torch.cat([self.encoder(chunk).float() for chunk in X.split(self.eval_mb_size)])
        return X, Z, y, T

    def _class_mask(self, classes) -> Tensor:
        mask = torch.zeros(self.num_classes, dtype=torch.bool, device=self.device)
        mask[list(classes)] = True
        return mask

    def training_epoch(self, **kwargs):
        """One epoch of the game; fires Avalanche's iteration callbacks around every step (with
        ``alternate``, the encoder's move happens inside the forward callbacks and the backward and
        update callbacks frame the decoder's move)."""
        for self.mbatch in self.dataloader:
            if self._stop_training:
                break
            self._unpack_minibatch()
            self._before_training_iteration(**kwargs)
            self.optimizer.zero_grad(set_to_none=True)
            self.decoder_optimizer.zero_grad(set_to_none=True)
            self._before_forward(**kwargs)
            for _ in range(self.encoder_steps - 1):
                self._rate_only_encoder_step(self.mb_x, self.mb_y)
            if self.alternate:
                self._encoder_move()
                encoder_loss, decoder_loss = None, self._game_forward()[1]
            else:
                encoder_loss, decoder_loss = self._game_forward()
            self._after_forward(**kwargs)
            self._before_backward(**kwargs)
            self._assign_gradients(encoder_loss, decoder_loss)
            self._after_backward(**kwargs)
            self._before_update(**kwargs)
            if not self.alternate:
                self.optimizer.step()
            self.decoder_optimizer.step()
            self._after_update(**kwargs)
            self._after_training_iteration(**kwargs)

    def _encoder_move(self) -> None:
        """The encoder's step on its own forward, X̂ decoded without gradient (alternating updates)."""
        encoder_loss, _ = self._game_forward(decoder_grad=False, record=False)
        self._assign_gradients(encoder_loss, None)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _game_forward(self, decoder_grad: bool = True, record: bool = True) -> tuple[Tensor, Tensor]:
        """X̂ = g([f(X_new); Z_old]), then one f call over [X_new; X̂; X_M]: real, decoded and anchor
        samples share the encoder's batch statistics, so g must match real images, not just their
        per-batch normalisation. The codes g decodes come from a gradient-free pass, so f's gradient of
        the encoder loss is the one with X̂ held fixed, while g's gradient of the decoder loss flows
        through f(X̂). Returns (encoder loss, decoder loss); ``decoder_grad=False`` decodes without
        gradient (the encoder's own move), ``record`` sets the step's output and loss and adds the
        terms to the epoch's scalars.
        """
        X, y = self.mb_x, self.mb_y
        codes, labels, anchor_images = self._codes_to_decode(X, y)
        n, n_codes = len(X), len(codes)
        with self._autocast():
            with torch.set_grad_enabled(decoder_grad):
                X_hat = self.decoder(codes)
            hold_anchors = anchor_images is not None and bool(self.anchor_weight)
            inputs = [X, X_hat.to(X.dtype)] + ([anchor_images] if hold_anchors else [])
            features = self.encoder(torch.cat(inputs))
        Z_new, Z_hat, Z_anchor = features[:n], features[n:n + n_codes], features[n + n_codes:]
        Z_old = codes[n:]  # memory prototypes are constants
        Z = torch.cat([Z_new, Z_old])
        terms = game_terms(Z, Z_hat, labels, self.num_classes, self.eps2)
        shared = shared_objective(terms, self._new_mask, self.new_weight)
        violation = terms.pairwise_sum(self._old_mask)
        penalty = constraint_penalty(violation, self.multiplier, self.rho)
        encoder_loss, decoder_loss = penalty - shared, shared + penalty
        if not self.encoder_discriminates:
            # Maximising Σ_new ΔR(Z_j, Ẑ_j) turns f into a real-vs-decoded discriminator: features of
            # real old-class images then leave the subspaces their decodings are held to.
            encoder_loss = encoder_loss + self.new_weight * terms.pairwise_sum(self._new_mask)
        drift = pixel = distill = None
        if self.previous_encoder is not None:
            with torch.no_grad(), self._autocast():
                Z_new_before = self.previous_encoder(X).float()
            distill = cosine_drift(Z_new, Z_new_before)
            encoder_loss = encoder_loss + self.distill_weight * distill
        if hold_anchors:
            drift = cosine_drift(Z_anchor, self._anchors[3][self._anchor_pick])
            encoder_loss = encoder_loss + self.anchor_weight * drift
        if self.pixel_weight and decoder_grad:
            targets = X if anchor_images is None else torch.cat([X, anchor_images])
            pixel = pixel_reconstruction_error(X_hat, targets)
            decoder_loss = decoder_loss + self.pixel_weight * pixel
        if not record:
            return encoder_loss, decoder_loss
        self.mb_output = self.classifier.scores(Z_new.detach(), self.num_classes)
        self.loss = encoder_loss.detach()
        for name, value in (("rate_reduction_z", terms.rate_reduction_z),
                            ("rate_reduction_zhat", terms.rate_reduction_zhat),
                            ("pairwise_new", terms.pairwise_sum(self._new_mask)),
                            ("constraint_old", violation), ("objective", shared),
                            ("anchor_drift", drift), ("pixel_error", pixel), ("distill_drift", distill)):
            if value is not None:
                self._epoch_sums[name] = self._epoch_sums[name] + value.detach()
        self._epoch_sums["steps"] = self._epoch_sums["steps"] + 1
        return encoder_loss, decoder_loss

    @torch.no_grad()
    def _codes_to_decode(self, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """[f(X_new); Z_old] without gradient, their labels, and the anchor images X_M paired with
        Z_old (None without anchors). Z_old holds as many codes per old class as a new class has in the
        batch (or replay_per_class): drawn from the fixed anchors when there are any, else fresh
        prototypes from the memory."""
        with self._autocast():
            codes = self.encoder(X).float()
        if not (len(self.memory) and self._old_mask.any()):
            return codes, y, None
        per_class = self.replay_per_class or math.ceil(len(y) / self._n_new_classes)
        if self._anchors is not None:
            X_M, Z_M, y_M, _ = self._anchors
            pick = _per_class_choice(y_M, per_class, X.device)
            self._anchor_pick = pick
            return torch.cat([codes, Z_M[pick]]), torch.cat([y, y_M[pick]]), X_M[pick]
        Z_old, y_old = self.memory.sample(per_class)
        keep = self._old_mask[y_old]
        return torch.cat([codes, Z_old[keep]]), torch.cat([y, y_old[keep]]), None

    def _assign_gradients(self, encoder_loss: Tensor, decoder_loss: Tensor) -> None:
        """Encoder: ∇_f of (−S + C); decoder: ∇_g of (S + C). A ``None`` loss leaves that player alone."""
        for module, loss, retain in ((self.encoder, encoder_loss, decoder_loss is not None),
                                     (self.decoder, decoder_loss, False)):
            if loss is None:
                continue
            params = [p for p in module.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
            for p, grad in zip(params, grads):
                p.grad = grad

    def _rate_only_encoder_step(self, X: Tensor, y: Tensor) -> None:
        """An extra encoder step that maximises ΔR(f(X) | y) alone."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            Z = self.encoder(X)
        (-rate_reduction(Z, y, self.eps2, self.num_classes)).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _after_training_epoch(self, **kwargs):
        steps = float(self._epoch_sums.pop("steps", 0))
        means = {name: float(total) / max(steps, 1) for name, total in self._epoch_sums.items()}
        self._epoch_sums = defaultdict(float)
        if self.rho and self._old_mask.any():
            self.multiplier += self.rho * means.get("constraint_old", 0.0)
        means["multiplier"] = self.multiplier
        self.last_epoch_terms = means
        for name, value in means.items():
            self._publish(f"ctrl/{name}", value, self._epoch_index)
        self._epoch_index += 1
        super()._after_training_epoch(**kwargs)

    def _after_training_exp(self, **kwargs):
        self._update_memory()
        self._fit_classifier()
        self._publish_experience_summary()
        super()._after_training_exp(**kwargs)

    def forward(self):
        with self._autocast():
            Z = self.encoder(self.mb_x)
        return self.classifier.scores(Z, self.num_classes)

    # ------------------------------------------------------------------ checkpointing
    def extra_state(self) -> dict:
        """What a between-experience checkpoint needs beyond the model and the encoder's optimiser."""
        return {"decoder_optimizer": self.decoder_optimizer.state_dict(), "memory": self.memory.state_dict(),
                "classifier": self.classifier.state_dict(), "multiplier": self.multiplier,
                "epoch_index": self._epoch_index, "num_classes": self.num_classes,
                "seen_train_datasets": self._seen_train_datasets}

    def load_extra_state(self, state: dict) -> None:
        self.decoder_optimizer.load_state_dict(state["decoder_optimizer"])
        self.memory.load_state_dict(state["memory"])
        self.classifier.load_state_dict(state["classifier"])
        self.multiplier, self._epoch_index = state["multiplier"], state["epoch_index"]
        self.num_classes, self._seen_train_datasets = state["num_classes"], state["seen_train_datasets"]

    # ------------------------------------------------------------------ memory and classifier
    @torch.no_grad()
    def features(self, dataset) -> tuple[Tensor, Tensor]:
        """f(X) and labels of a whole dataset, in eval mode."""
        Zs, ys = [], []
        with self._evaluating():
            for batch in DataLoader(dataset, batch_size=self.eval_mb_size, shuffle=False):
                Zs.append(self.encoder(batch[0].to(self.device)).float())
                ys.append(batch[1].to(self.device))
        return torch.cat(Zs), torch.cat(ys)

    @torch.no_grad()
    def _update_memory(self) -> None:
        current = set(int(c) for c in self.experience.classes_in_this_experience)
        if self.review and len(self.memory):
            Z_old, y_old = self.memory.sample()
            keep = torch.tensor([int(c) not in current for c in y_old.tolist()], device=y_old.device)
            with self._evaluating():
                reviewed = self.encoder(self.decoder(Z_old[keep])).float()
            self.memory.store(reviewed, y_old[keep])
        dataset = self.experience.dataset.eval()
        Z, y = self.features(dataset)
        self.memory.store(Z, y)
        if self.classifier_protocol == "paper":
            self._seen_train_datasets.append(dataset)

    def _fit_classifier(self) -> None:
        if self.classifier_protocol == "paper":
            feats = [self.features(ds) for ds in self._seen_train_datasets]
            self.classifier.fit(torch.cat([z for z, _ in feats]), torch.cat([y for _, y in feats]), self.n_components)
        else:
            k = min(self.n_components, self.memory.n_directions)
            self.classifier.set_subspaces(self.memory.labels, self.memory.means, self.memory.directions[:, :k],
                                          self.memory.variances[:, :k])

    # ------------------------------------------------------------------ TensorBoard
    def _publish(self, name: str, value, x: int) -> None:
        if self.evaluator is not None:
            self.evaluator.publish_metric_value(MetricValue(self, name, value, x))

    @torch.no_grad()
    def decode_memory(self, per_class: int) -> tuple[Tensor, Tensor]:
        """What the memory replays: g(z) for ``per_class`` fresh prototypes z of every stored class,
        in eval mode; returns (images, labels)."""
        Z, y = self.memory.sample(per_class)
        with self._evaluating():
            return self._decode(Z), y

    @torch.no_grad()
    def _publish_experience_summary(self) -> None:
        x = self.clock.train_exp_counter
        self._publish("memory/floats", self.memory.size_in_floats(), x)
        self._publish("memory/classes", len(self.memory), x)
        if self.evaluator is None:
            return
        m = self.images_per_class
        replay, labels = self.decode_memory(m)
        for c in self.memory.classes:
            self._publish(f"replay/class_{c}", TensorImage(visuals.image_grid(replay[labels == c], nrow=m)), x)
        self._publish("replay/all_classes", TensorImage(visuals.replay_grid(replay, labels)), x)
        dataset = self.experience.dataset.eval()
        targets = torch.as_tensor(list(dataset.targets))
        picked = torch.cat([(targets == c).nonzero().squeeze(1)[:m] for c in torch.unique(targets)])
        X_real = torch.stack([dataset[int(i)][0] for i in picked]).to(self.device)
        with self._evaluating():
            recon = self.decoder(self.encoder(X_real)).float()
        self._publish("reconstruction/current_classes",
                      TensorImage(visuals.reconstruction_grid(X_real, recon, targets[picked])), x)
        Z_heat, y_heat = self.memory.sample(32)
        self._publish("features/abs_ZZt_replay", TensorImage(visuals.similarity_heatmap(Z_heat, y_heat)), x)
