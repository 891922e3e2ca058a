"""i-CTRL (Tong et al., ICLR 2023) as an Avalanche strategy.

One fixed-capacity autoencoder (f, g). Old classes live only as feature statistics in a
:class:`~ctrl_bench.memory.FeatureMemory`; each experience plays the constrained rate-reduction
game of :mod:`ctrl_bench.game`; classification is nearest subspace on features.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from avalanche.evaluation.metric_results import MetricValue, TensorImage
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate
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


class ICTRL(SupervisedTemplate):
    """Incremental closed-loop transcription.

    Game options: ``eps2`` (ε²), ``lr`` and ``betas`` (Adam, both players), ``new_weight`` (λ on
    Σ_new ΔR(Z_j, Ẑ_j), in every experience: λ = 1 on the first is plain CTRL),
    ``constraint`` ("penalty": fixed γ; "augmented_lagrangian": multiplier μ, starting at γ, grows
    by ρ·ΔR(Z_old, Ẑ_old) after every epoch), ``encoder_steps`` (k ≥ 1: k − 1 extra encoder steps
    maximising ΔR(Z) alone, then one step of both players, as the reference CIFAR-10 code),
    ``alternate`` (True, the reference code: the encoder steps, then the decoder steps against the
    updated encoder from a fresh forward; False: both players step on the gradients of one forward,
    one gradient-free decoder pass cheaper, with the decoder answering the encoder of the step before).
    Memory options: ``n_directions`` (r), ``n_prototypes`` (per class), ``replay_per_class``
    (prototypes per old class in each step; default: as many as a new class has in the batch),
    ``review`` (refresh old classes' statistics through f∘g after each experience).
    Classifier: ``classifier`` ("memory" or "paper", see ``CLASSIFIER_PROTOCOLS``), ``n_components``.
    """

    def __init__(
        self, *, encoder: nn.Module, decoder: nn.Module, train_epochs: int = 1, train_mb_size: int = 512,
        eval_mb_size: int = 1024, device="cpu", evaluator=default_evaluator, plugins=None, eval_every: int = -1,
        eps2: float = 1.0, lr: float = 1e-4, betas=(0.5, 0.999), new_weight: float = 10.0,
        constraint: str = "penalty", gamma: float = 1.0, rho: float = 1.0, encoder_steps: int = 1,
        alternate: bool = True, n_directions: int = 12, n_prototypes: int = 360,
        replay_per_class: int | None = None, review: bool = False, classifier: str = "memory", n_components: int = 15,
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
        self.classifier_protocol, self.n_components = classifier, n_components
        self.mixed_precision = (torch.device(device).type == "cuda") if mixed_precision is None else mixed_precision
        self.num_classes = num_classes or 0
        self.images_per_class = images_per_class
        self.memory = FeatureMemory(n_directions, n_prototypes)
        self.classifier = NearestSubspaceClassifier()
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
        super()._before_training_exp(**kwargs)

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
        """X̂ = g([f(X_new); Z_old]), then one f call over [X_new; X̂]: real, decoded and memory samples
        share the encoder's batch statistics, so g must match real images, not just their per-batch
        normalisation. The codes g decodes come from a gradient-free pass, so f's gradient of the
        encoder loss is the one with X̂ held fixed, while g's gradient of the decoder loss flows
        through f(X̂). Returns (encoder loss, decoder loss); ``decoder_grad=False`` decodes without
        gradient (the encoder's own move), ``record`` sets the step's output and loss and adds the terms to the epoch's scalars.
        """
        X, y = self.mb_x, self.mb_y
        codes, labels = self._codes_to_decode(X, y)
        with self._autocast():
            with torch.set_grad_enabled(decoder_grad):
                X_hat = self.decoder(codes)
            features = self.encoder(torch.cat([X, X_hat.to(X.dtype)]))
        Z_new, Z_hat = features[:len(X)], features[len(X):]
        Z = torch.cat([Z_new, codes[len(X):]])  # memory prototypes are constants
        terms = game_terms(Z, Z_hat, labels, self.num_classes, self.eps2)
        shared = shared_objective(terms, self._new_mask, self.new_weight)
        violation = terms.pairwise_sum(self._old_mask)
        penalty = constraint_penalty(violation, self.multiplier, self.rho)
        if not record:
            return penalty - shared, shared + penalty
        self.mb_output = self.classifier.scores(Z_new.detach(), self.num_classes)
        self.loss = (penalty - shared).detach()
        for name, value in (("rate_reduction_z", terms.rate_reduction_z),
                            ("rate_reduction_zhat", terms.rate_reduction_zhat),
                            ("pairwise_new", terms.pairwise_sum(self._new_mask)),
                            ("constraint_old", violation), ("objective", shared)):
            self._epoch_sums[name] = self._epoch_sums[name] + value.detach()
        self._epoch_sums["steps"] = self._epoch_sums["steps"] + 1
        return penalty - shared, shared + penalty

    @torch.no_grad()
    def _codes_to_decode(self, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """[f(X_new); Z_old] without gradient, and their labels; Z_old are fresh memory prototypes
        of the old classes, as many per class as a new class has in the batch (or replay_per_class)."""
        with self._autocast():
            codes = self.encoder(X).float()
        labels = y
        if len(self.memory) and self._old_mask.any():
            per_class = self.replay_per_class or math.ceil(len(y) / self._n_new_classes)
            Z_old, y_old = self.memory.sample(per_class)
            keep = self._old_mask[y_old]
            codes, labels = torch.cat([codes, Z_old[keep]]), torch.cat([y, y_old[keep]])
        return codes, labels

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
        was_training = self.model.training
        self.model.eval()
        Zs, ys = [], []
        for batch in DataLoader(dataset, batch_size=self.eval_mb_size, shuffle=False):
            with self._autocast():
                Zs.append(self.encoder(batch[0].to(self.device)).float())
            ys.append(batch[1].to(self.device))
        self.model.train(was_training)
        return torch.cat(Zs), torch.cat(ys)

    @torch.no_grad()
    def _update_memory(self) -> None:
        was_training = self.model.training
        self.model.eval()
        current = set(int(c) for c in self.experience.classes_in_this_experience)
        if self.review and len(self.memory):
            Z_old, y_old = self.memory.sample()
            keep = torch.tensor([int(c) not in current for c in y_old.tolist()], device=y_old.device)
            with self._autocast():
                reviewed = self.encoder(self.decoder(Z_old[keep])).float()
            self.memory.store(reviewed, y_old[keep])
        dataset = self.experience.dataset.eval()
        Z, y = self.features(dataset)
        self.memory.store(Z, y)
        if self.classifier_protocol == "paper":
            self._seen_train_datasets.append(dataset)
        self.model.train(was_training)

    def _fit_classifier(self) -> None:
        if self.classifier_protocol == "paper":
            feats = [self.features(ds) for ds in self._seen_train_datasets]
            self.classifier.fit(torch.cat([z for z, _ in feats]), torch.cat([y for _, y in feats]), self.n_components)
        else:
            k = min(self.n_components, self.memory.n_directions)
            self.classifier.set_subspaces(self.memory.labels, self.memory.means, self.memory.directions[:, :k])

    # ------------------------------------------------------------------ TensorBoard
    def _publish(self, name: str, value, x: int) -> None:
        if self.evaluator is not None:
            self.evaluator.publish_metric_value(MetricValue(self, name, value, x))

    @torch.no_grad()
    def _publish_experience_summary(self) -> None:
        x = self.clock.train_exp_counter
        self._publish("memory/floats", self.memory.size_in_floats(), x)
        self._publish("memory/classes", len(self.memory), x)
        if self.evaluator is None:
            return
        was_training = self.model.training
        self.model.eval()
        m = self.images_per_class
        Z_old, y_old = self.memory.sample(m)
        with self._autocast():
            replay = self.decoder(Z_old).float()
        for i, c in enumerate(self.memory.classes):
            self._publish(f"replay/class_{c}", TensorImage(visuals.image_grid(replay[i * m:(i + 1) * m], nrow=m)), x)
        self._publish("replay/all_classes", TensorImage(visuals.image_grid(replay, nrow=m)), x)
        X_real = torch.stack([self.experience.dataset.eval()[i][0] for i in range(min(16, len(self.experience.dataset)))])
        X_real = X_real.to(self.device)
        with self._autocast():
            Z_real = self.encoder(X_real)
            recon = self.decoder(Z_real).float()
        self._publish("reconstruction/current_classes", TensorImage(visuals.reconstruction_grid(X_real, recon)), x)
        Z_heat, y_heat = self.memory.sample(32)
        self._publish("features/abs_ZZt_replay", TensorImage(visuals.similarity_heatmap(Z_heat, y_heat)), x)
        self.model.train(was_training)
