#!/usr/bin/env python3
"""Where the training compute goes: training FLOPs and seconds per phase, and per part of a step, of
ctrl (i-CTRL) and DER (or any method), as the harness trains them.

Each method is built and trained exactly as a harness cell is (``runner._start``: the cell's settings
for the preset, its seed, the harness's plugins; the harness's own FLOPs counter is swapped for this
script's, ``flops_overhead.NoCounting``), experience by experience, without the evaluations. Nothing
measured changes what is trained: module hooks, wrappers around methods (each calls the original
with the same arguments) and ``torch.utils.flop_counter.FlopCounterMode`` observe the run, and the
RNG is never drawn from.

**Phases.** A step's phase is the strategy's ``step_phase`` (i-CTRL: ``decoder warm-up``, ``game``,
``decoder finish``; what the harness's counter keys its sampling on, ``harness/flops.py``), or
``step`` for a method without one, split into the first experience and the later ones (i-CTRL's
first experience has its own batch, ``first_steps``; DER's has no buffer yet). Besides the steps:
*upkeep*, the per-experience work before the first step (anchors decoded and encoded, the drift map's
start, the loader) and after the last (the experience's features, the memory's statistics and
classifier, the drift map, the summary images; DER's buffer and its logits), counted and timed whole
as the harness counts it; and *between steps* (loading the next batch, epoch bookkeeping: seconds,
no FLOPs, as in the harness). Phases' FLOPs sum to the total.

**FLOPs** are the harness's count (``flops._counter``: FlopCounterMode with the rate terms'
factorisations). A step's FLOPs depend on its experience, phase, batch rows and classes in the
batch (its *key*: the replay, and the rate terms' P classes, follow from those); the first
``--steps-per-phase`` N steps of every key are counted, part by part, and one more as a whole (the
check below), and a phase's FLOPs are Σ_keys steps × the key's mean. Where the steps of a key cost
the same, this is exact.

**Seconds** of every step are read with ``time.perf_counter`` (after a device synchronisation).
A counted step runs slower (the counter's Python dispatch per operation), so its seconds are taken
as the mean of its key's uncounted steps (else the per-row rate of its experience's or phase's
uncounted steps; else as measured, under the counter, flagged). Upkeep runs under the counter, as in
a harness run; its few large operations make the overhead small.

**Parts of a step.** In a labelled step every boundary between parts reads the clock and the
counter, and the time and FLOPs since the last boundary go to the part that was running (parts
nest; each is charged only its own share, so the parts add up to the step). Parts: each network
pass (forward hooks on f, g, or the classifier), told apart by its input: f on
the new images; g on the codes of the new images and the replayed codes (one call; its rows are
shown); f on the decoded images and the anchors (one call); the rate terms (``game_terms``: Gram
matrices and batched Cholesky log-dets); the backward passes (``torch.autograd.grad`` for f's loss
and for g's loss, which goes back through f into g; DER's ``loss.backward``); the Adam steps; the
replay's draw, the training metrics' classifier scores, and the rest (losses, concatenations,
plugins). DER: the buffer batch drawn, the forward on batch + buffer batch, the loss, the backward.
Part FLOPs come from the counted steps (weighted by the keys' steps), part seconds from N more
steps per experience and phase timed part by part without the counter (a synchronisation at each
boundary); where a phase had no such step, from the counted ones (flagged: the counter's overhead
inflates its many small operations most).

    python benchmarks/compute_breakdown.py --scenario mnist_5k --epochs 2            # a few minutes on a CPU
    python benchmarks/compute_breakdown.py --scenario mnist_5k cifar10_subset --threads 2 --json breakdown.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import avalanche.core  # noqa: F401  (avalanche's modules import each other in this order)
import torch
from avalanche.core import SupervisedPlugin

from baselines import get_method
from ctrl_bench.device import resolve_device, synchronize
from ctrl_bench.harness import RunConfig, runner
from ctrl_bench.harness.cells import cell_settings, memories, silence_warnings
from ctrl_bench.harness.flops import _counter
from ctrl_bench.ictrl import step as step_module
from scenarios import load_data, make_scenario


def _sibling(name: str):
    """A script of this folder as a module, without putting the folder on ``sys.path``."""
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NoCounting = _sibling("flops_overhead").NoCounting  # the harness counter's interface, counting nothing

ROOT = Path(__file__).resolve().parents[1]
# the CIFAR-10 subset of shared/data (README there), next to the checkout
SCENARIO_ALIASES = {"cifar10_subset": f"npz:{ROOT.parent / 'shared' / 'data' / 'cifar10-subset.npz'}"}
OTHER = "other (losses, concatenations, zero_grad, metrics, plugins)"
SETUP_OTHER = "set-up: other (loader, optimiser reset, plugins)"
AFTER_OTHER = "after: other (bookkeeping, plugins)"
COUNTED, WHOLE, TIMED, PLAIN = "counted", "whole", "timed", "plain"


def scenario_name(name: str) -> str:
    return SCENARIO_ALIASES.get(name, name)


# ---------------------------------------------------------------------------------------- the profiler
class _Front(SupervisedPlugin):
    """First of the strategy's plugins: a window opens here before any other plugin's work of it."""

    def __init__(self, owner: "Profiler"):
        super().__init__()
        self.owner = owner

    def before_training(self, strategy, **kwargs):
        self.owner.training_begins(strategy)

    def before_training_epoch(self, strategy, **kwargs):
        self.owner.epoch_begins(strategy)

    def before_training_iteration(self, strategy, **kwargs):
        self.owner.step_begins(strategy)

    # DER's (and Avalanche's SGD update's) moments of a step
    def before_forward(self, strategy, **kwargs):
        if getattr(strategy, "replay_loader", None) is not None:
            self.owner.switch("buffer batch drawn (replay loader)")

    def after_forward(self, strategy, **kwargs):
        replaying = getattr(strategy, "replay_loader", None) is not None
        self.owner.switch("loss (cross-entropy, logit matching)" if replaying else "loss")

    def after_backward(self, strategy, **kwargs):
        self.owner.switch(OTHER)


class _Back(SupervisedPlugin):
    """Last of the strategy's plugins: a window closes here after every other plugin's work of it."""

    def __init__(self, owner: "Profiler"):
        super().__init__()
        self.owner = owner

    def after_training_iteration(self, strategy, **kwargs):
        self.owner.step_ends(strategy)

    def after_training(self, strategy, **kwargs):
        self.owner.training_ends(strategy)


class Profiler:
    """Times and counts one method's training: every step whole, sampled steps part by part, the upkeep
    part by part. A *window* (a step, the set-up before the first step, the work after the last) is
    timed from its start; in a labelled window a stack of part labels gets each stretch of time and
    FLOPs between two boundaries charged to the part on top."""

    def __init__(self, device, steps_per_phase: int):
        self.device, self.n = torch.device(device), max(1, steps_per_phase)
        self.front, self.back = _Front(self), _Back(self)
        self.window: str | None = None  # "setup" | "after" | "step"
        self.labelling = False
        self.counter = None
        self.stack: list[str] = []
        self.parts: dict[str, list] = {}
        self.rows: dict[str, str] = {}
        self._t = self._f = 0
        self._opaque: set[str] = set()
        self.experience = -1
        self.steps: list[dict] = []
        self.upkeep: list[dict] = []  # per window: {"experience", "when", "flops", "seconds", "parts"}
        self.between_seconds = 0.0
        self.train_seconds = 0.0
        self._between_began = self._window_began = self._train_began = None
        self._epoch = self._epoch_steps = self._in_epoch = 0
        self._seen: dict[tuple, Counter] = defaultdict(Counter)  # key → modes so far
        self._timed: Counter = Counter()  # (experience, phase) → timed steps so far
        self._step: dict | None = None
        self.strategy = None

    # ------------------------------------------------------------------ clock and counter
    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def _flops(self) -> int:
        return int(self.counter.get_total_flops()) if self.counter is not None else 0

    def _mark(self) -> None:
        """Charge the time and FLOPs since the last boundary to the part on top of the stack."""
        now, flops = self._now(), self._flops()
        acc = self.parts.setdefault(self.stack[-1], [0, 0.0])
        acc[0] += flops - self._f
        acc[1] += now - self._t
        self._t, self._f = now, flops

    def push(self, label: str | None, opaque: bool = False) -> bool:
        """A part begins (inside the current one); False where nothing is labelled now."""
        if label is None or not self.labelling or (self.stack and self.stack[-1] in self._opaque):
            return False
        self._mark()
        self.stack.append(label)
        self.parts.setdefault(label, [0, 0.0])
        if opaque:  # what runs inside it is charged to it whole
            self._opaque.add(label)
        return True

    def pop(self, pushed: bool) -> None:
        if pushed and self.labelling:
            self._mark()
            self.stack.pop()

    def switch(self, label: str) -> None:
        """The step's base part changes (DER: drawing the buffer batch, the loss, the rest)."""
        if self.labelling and self.window == "step" and len(self.stack) == 1:
            self._mark()
            self.stack[0] = label
            self.parts.setdefault(label, [0, 0.0])

    @contextmanager
    def part(self, label: str | None, opaque: bool = False):
        pushed = self.push(label, opaque)
        try:
            yield
        finally:
            self.pop(pushed)

    def _open(self, window: str, base: str, counting: bool, labelling: bool) -> None:
        self.window, self.labelling = window, labelling
        self.stack, self.parts, self.rows, self._opaque = [base], {base: [0, 0.0]}, {}, set()
        if counting:
            self.counter = _counter()
            self.counter.__enter__()
        self._window_began = self._t = self._now()
        self._f = 0

    def _close(self) -> dict:
        if self.labelling:
            self._mark()
        seconds = self._now() - self._window_began
        flops = self._flops() if self.counter is not None else None
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.counter = None
        closed = {"seconds": seconds, "flops": flops,
                  "parts": {k: tuple(v) for k, v in self.parts.items()} if self.labelling else None,
                  "part_rows": dict(self.rows)}
        self.window, self.labelling, self.stack, self.parts = None, False, [], {}
        return closed

    def _close_upkeep(self) -> None:
        if self.window in ("setup", "after"):
            when = self.window
            self.upkeep.append({"experience": self.experience, "when": when, **self._close()})

    # ------------------------------------------------------------------ the plugins' moments
    def training_begins(self, strategy) -> None:
        self.strategy = strategy
        self.experience += 1
        self._epoch = 0
        self._between_began = None
        self._train_began = self._now()
        self._open("setup", SETUP_OTHER, counting=True, labelling=True)

    def epoch_begins(self, strategy) -> None:
        self._epoch += 1
        self._epoch_steps, self._in_epoch = len(strategy.dataloader), 0

    def step_begins(self, strategy) -> None:
        self._close_upkeep()
        if self._between_began is not None:
            self.between_seconds += self._now() - self._between_began
            self._between_began = None
        phase = getattr(strategy, "step_phase", None)
        phase = "step" if phase is None else str(phase)
        rows = len(strategy.mb_x)
        classes = int(torch.unique(strategy.mb_y).numel())
        key = (self.experience, phase, rows, classes)
        seen = self._seen[key]
        if seen[COUNTED] < self.n:
            mode = COUNTED
        elif seen[WHOLE] < 1:
            mode = WHOLE
        elif self._timed[(self.experience, phase)] < self.n:
            mode = TIMED
            self._timed[(self.experience, phase)] += 1
        else:
            mode = PLAIN
        seen[mode] += 1
        self._step = {"experience": self.experience, "phase": phase, "rows": rows, "classes": classes,
                      "key": key, "mode": mode}
        self._open("step", OTHER, counting=mode in (COUNTED, WHOLE), labelling=mode in (COUNTED, TIMED))

    def step_ends(self, strategy) -> None:
        if self.window != "step":
            return
        closed = self._close()
        self.steps.append({**self._step, **closed})
        self._in_epoch += 1
        if self._in_epoch >= self._epoch_steps and self._epoch >= strategy.train_epochs:  # the last step: upkeep
            self._open("after", AFTER_OTHER, counting=True, labelling=True)
        else:
            self._between_began = self._now()

    def training_ends(self, strategy) -> None:
        if self.window == "setup":  # an experience without a step: its set-up and after are one window
            self.window = "after"
        self._close_upkeep()
        if self._between_began is not None:  # training stopped early: no window after the last step
            self.between_seconds += self._now() - self._between_began
            self._between_began = None
        self.train_seconds += self._now() - self._train_began

    # ------------------------------------------------------------------ what is labelled
    def in_step(self) -> bool:
        return self.labelling and self.window == "step"

    def in_upkeep(self) -> bool:
        return self.labelling and self.window in ("setup", "after")

    def note_rows(self, label: str, text: str) -> None:
        self.rows.setdefault(label, text)


class Instruments:
    """The hooks and wrappers that label a strategy's parts for a :class:`Profiler`; :meth:`remove`
    takes them off (the global ones, ``torch.autograd.grad`` and the step's ``game_terms``, included)."""

    def __init__(self, strategy, profiler: Profiler):
        self.strategy, self.p = strategy, profiler
        self._undo: list = []
        self._hook_stack: list[bool] = []
        self._decoded_rows = 0
        self._anchor_rows = 0
        p = profiler
        encoder, decoder = getattr(strategy, "encoder", None), getattr(strategy, "decoder", None)
        self.ctrl = encoder is not None and decoder is not None and hasattr(strategy, "replay_plugin")
        if self.ctrl:
            self.joint = step_module.normalises_over_the_batch(encoder)
            self._hook(encoder, self._encoder_label)
            self._hook(decoder, self._decoder_label)
            self.f_params = {id(q) for q in encoder.parameters()}
            self.g_params = {id(q) for q in decoder.parameters()}
        else:
            self._hook(strategy.model, self._model_label)
            self.f_params, self.g_params = {id(q) for q in strategy.model.parameters()}, set()
        # the step
        self._global(step_module, "game_terms", "rate terms (class Gram matrices, batched Cholesky log-dets)")
        self._global(torch.autograd, "grad", self._grad_label)
        for optimizer in (getattr(strategy, "optimizer", None), getattr(strategy, "decoder_optimizer", None)):
            if optimizer is not None:
                self._wrap(optimizer, "step", lambda *a, **k: "Adam steps" if self.ctrl else "optimizer step",
                           when=p.in_step)
        if self.ctrl:
            self._wrap(strategy.replay_plugin, "draw", "replay drawn (anchors picked)", when=p.in_step)
            self._wrap(strategy, "scores", "classifier scores of the batch (training metrics)", when=p.in_step)
            self._wrap(strategy, "_rate_only_encoder_step", "extra encoder steps (rate only, encoder_steps > 1)",
                       when=p.in_step, opaque=True)
        else:
            self._wrap(strategy, "backward", "backward", when=p.in_step)
        # the upkeep
        if self.ctrl:
            self._wrap(strategy.replay_plugin, "before_training_exp", "set-up: anchors decoded (g) and encoded (f)",
                       when=p.in_upkeep)
            start = "set-up: f on the experience's images (the drift map's start)"
            self._wrap(strategy.memory_plugin, "before_training_exp", start, when=p.in_upkeep)
            self._wrap(strategy, "features", lambda *a, **k: start if p.window == "setup"
                       else "after: f on the experience's images (the memory's input)", when=p.in_upkeep)
            self._wrap(strategy.memory_plugin, "_follow_drift",
                       "after: drift map (anchors encoded again, map fitted, statistics moved)", when=p.in_upkeep)
            self._wrap(strategy.memory_plugin, "after_training_exp", "after: statistics stored, classifier fitted",
                       when=p.in_upkeep)
            for plugin in strategy.plugins:
                if type(plugin).__name__ == "ExperienceSummaryPlugin":
                    self._wrap(plugin, "after_training_exp", "after: summary images (TensorBoard)", when=p.in_upkeep)
        storage = getattr(strategy, "storage_policy", None)
        if storage is not None:
            self._wrap(storage, "update", "after: buffer updated (logits of the experience's images, reservoir)",
                       when=p.in_upkeep)

    # ------------------------------------------------------------------ labels of network passes
    def _encoder_label(self, module, args) -> str | None:
        s, X = self.strategy, args[0]
        grad = "" if torch.is_grad_enabled() else " (no grad)"
        if X is s.mb_x:
            label = f"f on the new images{grad}"
            self.p.note_rows(label, f"{len(X)}")
            return label
        n = len(s.mb_x)
        label = "f on the new, decoded and anchor images" if self.joint else "f on the decoded images and anchors"
        label += grad
        if self.joint:  # one call: new, decoded and anchor images
            anchors = len(X) - n - self._decoded_rows
            self.p.note_rows(label, f"{n} new + {self._decoded_rows} decoded + {anchors} anchors")
        elif len(X) != self._decoded_rows:  # without BatchNorm the anchors have their own call, first
            self._anchor_rows = len(X)
        else:
            self.p.note_rows(label, f"{self._decoded_rows} decoded + {self._anchor_rows} anchors")
            self._anchor_rows = 0
        return label

    def _decoder_label(self, module, args) -> str:
        s, Z = self.strategy, args[0]
        n = len(s.mb_x)
        if Z.requires_grad:
            label = "g on f's codes of the new images, with gradient (f's pixel loss in the warm-up)"
            self.p.note_rows(label, f"{len(Z)}")
            return label
        self._decoded_rows = len(Z)
        label = "g on the codes of the new images and the replayed codes" + (
            "" if torch.is_grad_enabled() else " (no grad)")
        self.p.note_rows(label, f"{n} new + {len(Z) - n} replayed")
        return label

    def _model_label(self, module, args) -> str:
        X, n = args[0], self.p._step["rows"] if self.p._step else len(args[0])
        if len(X) > n:
            label = "forward: model on the batch and the buffer batch"
            self.p.note_rows(label, f"{n} new + {len(X) - n} buffer")
        else:
            label = "forward: model on the batch"
            self.p.note_rows(label, f"{len(X)}")
        return label

    def _grad_label(self, outputs, inputs=None, *args, **kwargs) -> str:
        ids = {id(q) for q in (inputs if isinstance(inputs, (list, tuple)) else [inputs])}
        if ids & self.f_params:
            return "backward: ∇f of f's loss"
        if ids & self.g_params:
            holds = getattr(self.strategy, "_encoder_holds", lambda: True)()  # the finish: g's loss has no f pass
            return "backward: ∇g of g's loss" + ("" if holds else " (back through f into g)")
        return "backward (other)"

    # ------------------------------------------------------------------ putting them on and off
    def _hook(self, module, labeller) -> None:
        p = self.p

        def before(mod, args):
            self._hook_stack.append(p.push(labeller(mod, args)) if p.in_step() else False)

        def after(mod, args, output):
            p.pop(self._hook_stack.pop() if self._hook_stack else False)

        handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
        self._undo.append(lambda: [h.remove() for h in handles])

    def _labelled(self, original, label, when, opaque=False):
        p = self.p

        def wrapper(*args, **kwargs):
            if not when():
                return original(*args, **kwargs)
            with p.part(label(*args, **kwargs) if callable(label) else label, opaque):
                return original(*args, **kwargs)

        return wrapper

    def _wrap(self, obj, name: str, label, when, opaque: bool = False) -> None:
        """``obj.name`` (a bound method) charged to ``label`` while ``when()``; an instance attribute,
        deleted again by :meth:`remove`."""
        if not hasattr(obj, name):
            return
        had = name in vars(obj)
        previous = vars(obj).get(name)
        setattr(obj, name, self._labelled(getattr(obj, name), label, when, opaque))
        self._undo.append(lambda: setattr(obj, name, previous) if had else delattr(obj, name))

    def _global(self, module, name: str, label) -> None:
        original = getattr(module, name)
        setattr(module, name, self._labelled(original, label, self.p.in_step))
        self._undo.append(lambda: setattr(module, name, original))

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


# ---------------------------------------------------------------------------------------- one run
def build_cell(method: str, scenario: str, epochs: int | None, seed: int, n_experiences: int | None,
               device: torch.device, method_options: dict | None = None, preset: str = "quick"):
    """(context, scenario, settings) of the harness's cell (``scenario`` seed ``seed``, the preset's
    budget or ``epochs`` per experience, the preset's memory for a rehearsal method)."""
    name = scenario_name(scenario)
    overrides = {} if epochs is None else {"epochs": epochs}
    config = RunConfig(scenarios=(name,), methods=(method,), seeds=(seed,), preset=preset, n_experiences=n_experiences,
                       overrides=overrides, method_options={method: dict(method_options or {})}, progress=False)
    data = load_data(name, n_experiences, None, data_root="./data", download=False)
    scene = make_scenario(data, seed)
    settings = cell_settings(config, data, method, device, memories(config, data, method)[0])
    ctx = runner.method_context(method, scene, settings, device, runner.make_evaluator(None))
    return ctx, scene, settings


def breakdown(method: str, scenario: str = "mnist_5k", *, epochs: int | None = None, steps_per_phase: int = 3,
              seed: int = 0, n_experiences: int | None = None, device="cpu", method_options: dict | None = None,
              extra_plugins=(), return_strategy: bool = False) -> dict:
    """Train ``method`` on ``scenario`` as a harness cell does (no evaluation), measured; returns
    :func:`summarise`'s numbers (and the trained strategy under "strategy" with ``return_strategy``).
    ``extra_plugins`` go after the harness's (a test's observer)."""
    device = torch.device(device)
    ctx, scene, settings = build_cell(method, scenario, epochs, seed, n_experiences, device, method_options)
    module = get_method(method)
    real = runner.TrainingFlops
    runner.TrainingFlops = NoCounting  # this script counts; the harness's counter would nest with it
    try:
        strategy, _, _, _ = runner._start(module.build, ctx, seed, list(extra_plugins), False, "")
    finally:
        runner.TrainingFlops = real
    profiler = Profiler(device, steps_per_phase)
    strategy.plugins.insert(0, profiler.front)
    strategy.plugins.append(profiler.back)
    instruments = Instruments(strategy, profiler)
    began = time.perf_counter()
    try:
        for i, experience in enumerate(scene.benchmark.train_stream):
            strategy.train_epochs = ctx.first_epochs if (i == 0 and ctx.first_epochs) else ctx.epochs
            strategy.train(experience, eval_streams=[])
    finally:
        instruments.remove()
        if profiler.counter is not None:
            profiler.counter.__exit__(None, None, None)
    wall = time.perf_counter() - began
    result = summarise(profiler)
    result.update(method=method, scenario=scenario, seed=seed, epochs=ctx.epochs, first_epochs=ctx.first_epochs,
                  experiences=len(scene.train_sizes), batch_size=ctx.batch_size, device=str(device),
                  threads=torch.get_num_threads(), steps_per_phase=profiler.n, run_seconds=wall,
                  settings=settings["method"])
    if return_strategy:
        result["strategy"] = strategy
    return result


# ---------------------------------------------------------------------------------------- the numbers
def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


def _group(step: dict) -> str:
    return f"{step['phase']} ({'first experience' if step['experience'] == 0 else 'later experiences'})"


def _step_seconds(steps: list[dict]) -> None:
    """Each step's ``estimated`` seconds: its own, or for a counted step its key's uncounted mean
    (else the per-row rate of its experience's and phase's, else its group's, uncounted steps)."""
    free = [s for s in steps if s["mode"] in (TIMED, PLAIN)]
    by_key = defaultdict(list)
    by_phase, by_group = defaultdict(list), defaultdict(list)
    for s in free:
        by_key[s["key"]].append(s["seconds"])
        by_phase[(s["experience"], s["phase"])].append((s["seconds"], s["rows"]))
        by_group[_group(s)].append((s["seconds"], s["rows"]))
    for s in steps:
        s["under_counter"] = False
        if s["mode"] in (TIMED, PLAIN):
            s["estimated"] = s["seconds"]
        elif by_key[s["key"]]:
            s["estimated"] = _mean(by_key[s["key"]])
        elif by_phase[(s["experience"], s["phase"])] or by_group[_group(s)]:
            pairs = by_phase[(s["experience"], s["phase"])] or by_group[_group(s)]
            s["estimated"] = s["rows"] * sum(t for t, _ in pairs) / sum(r for _, r in pairs)
        else:
            s["estimated"], s["under_counter"] = s["seconds"], True


def _part_table(group_steps: list[dict]) -> dict:
    """Per-part FLOPs and seconds of an average step of one group of steps."""
    keys = Counter(s["key"] for s in group_steps)
    labelled = defaultdict(list)
    for s in group_steps:
        if s["mode"] == COUNTED:
            labelled[s["key"]].append(s)
    flops = defaultdict(float)
    order: list[str] = []
    weight = sum(keys[k] for k in labelled)
    for key, steps in labelled.items():
        for s in steps:
            for label, (f, _) in s["parts"].items():
                flops[label] += keys[key] * f / len(steps) / weight
                order.append(label)
    # seconds: the timed steps of every experience, weighted by its steps; else its counted steps (flagged)
    per_exp = Counter(s["experience"] for s in group_steps)
    seconds = defaultdict(float)
    timed_steps, under_counter = 0, False
    for exp, count in per_exp.items():
        timed = [s for s in group_steps if s["experience"] == exp and s["mode"] == TIMED]
        if not timed:
            timed = [s for s in group_steps if s["experience"] == exp and s["mode"] == COUNTED]
            under_counter = True
        timed_steps += len(timed)
        for s in timed:
            for label, (_, t) in s["parts"].items():
                seconds[label] += count * t / len(timed) / len(group_steps)
                order.append(label)
    labels = list(dict.fromkeys(order))
    labels = [x for x in labels if x != OTHER] + ([OTHER] if OTHER in labels else [])
    main_key = keys.most_common(1)[0][0]
    rows = {}
    for s in labelled.get(main_key, []):
        for label, text in s["part_rows"].items():
            rows.setdefault(label, text)
    total_f, total_s = sum(flops.values()), sum(seconds.values())
    return {"steps": len(group_steps), "counted_steps": sum(len(v) for v in labelled.values()),
            "timed_steps": timed_steps, "seconds_under_counter": under_counter,
            "rows_of_main_key": {"batch_rows": main_key[2], "classes_in_batch": main_key[3]},
            "flops_per_step": total_f, "seconds_per_step": total_s,
            "parts": [{"part": label, "rows": rows.get(label), "flops_per_step": flops.get(label, 0.0),
                       "seconds_per_step": seconds.get(label, 0.0),
                       "flops_share": flops.get(label, 0.0) / total_f if total_f else 0.0,
                       "seconds_share": seconds.get(label, 0.0) / total_s if total_s else 0.0} for label in labels]}


def summarise(profiler: Profiler) -> dict:
    """Phases (steps' groups, upkeep, between steps) with steps, FLOPs, seconds and shares; per group
    the parts of its average step; the upkeep's parts; the whole-step check."""
    steps = profiler.steps
    _step_seconds(steps)
    mean_flops = {}
    for key in {s["key"] for s in steps}:
        mean_flops[key] = _mean(s["flops"] for s in steps if s["key"] == key and s["flops"] is not None)
    groups = list(dict.fromkeys(_group(s) for s in steps))
    phases = []
    for group in groups:
        members = [s for s in steps if _group(s) == group]
        phases.append({"phase": group, "step_phase": members[0]["phase"], "kind": "steps", "steps": len(members),
                       "flops": sum(mean_flops[s["key"]] for s in members),
                       "seconds": sum(s["estimated"] for s in members),
                       "seconds_as_run": sum(s["seconds"] for s in members),
                       "seconds_under_counter": any(s["under_counter"] for s in members)})
    upkeep_flops = sum(w["flops"] for w in profiler.upkeep)
    upkeep_seconds = sum(w["seconds"] for w in profiler.upkeep)
    experiences = len({w["experience"] for w in profiler.upkeep})
    phases.append({"phase": f"upkeep ({experiences} experiences)", "step_phase": None, "kind": "upkeep",
                   "steps": 0, "flops": upkeep_flops, "seconds": upkeep_seconds, "seconds_as_run": upkeep_seconds,
                   "seconds_under_counter": True})
    phases.append({"phase": "between steps (data loading, epoch bookkeeping)", "step_phase": None, "kind": "between",
                   "steps": 0, "flops": 0, "seconds": profiler.between_seconds,
                   "seconds_as_run": profiler.between_seconds, "seconds_under_counter": False})
    total_flops = sum(p["flops"] for p in phases)
    total_seconds = sum(p["seconds"] for p in phases)
    for p in phases:
        p["flops_share"] = p["flops"] / total_flops if total_flops else 0.0
        p["seconds_share"] = p["seconds"] / total_seconds if total_seconds else 0.0
    upkeep_parts = defaultdict(lambda: [0, 0.0])
    for w in profiler.upkeep:
        for label, (f, t) in w["parts"].items():
            upkeep_parts[label][0] += f
            upkeep_parts[label][1] += t
    order = sorted(upkeep_parts, key=lambda k: (not k.startswith("set-up"), k in (SETUP_OTHER, AFTER_OTHER)))
    upkeep = [{"part": k, "flops": upkeep_parts[k][0], "seconds": upkeep_parts[k][1],
               "flops_share": upkeep_parts[k][0] / upkeep_flops if upkeep_flops else 0.0,
               "seconds_share": upkeep_parts[k][1] / upkeep_seconds if upkeep_seconds else 0.0} for k in order]
    checks = []
    for key in sorted(mean_flops, key=str):
        whole = [s["flops"] for s in steps if s["key"] == key and s["mode"] == WHOLE]
        parts = [sum(f for f, _ in s["parts"].values()) for s in steps if s["key"] == key and s["mode"] == COUNTED]
        if whole and parts:
            checks.append({"key": list(key), "whole": _mean(whole), "parts": _mean(parts)})
    deviation = max((abs(c["parts"] / c["whole"] - 1) for c in checks if c["whole"]), default=None)
    return {"phases": phases, "parts": {g: _part_table([s for s in steps if _group(s) == g]) for g in groups},
            "upkeep_parts": upkeep, "upkeep_per_experience": [
                {k: w[k] for k in ("experience", "when", "flops", "seconds")} for w in profiler.upkeep],
            "total_flops": total_flops, "total_seconds": total_seconds, "train_seconds_as_run": profiler.train_seconds,
            "steps": len(steps), "counted_steps": sum(s["mode"] in (COUNTED, WHOLE) for s in steps),
            "whole_step_check": {"keys": checks, "max_relative_deviation": deviation}}


# ---------------------------------------------------------------------------------------- the tables
def flops_text(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _shown(part: dict, flops: str, seconds: str) -> bool:
    """A part worth a row: some FLOPs, or at least 0.1 % of the time (a wrapper that ran empty is not)."""
    return part[flops] > 0 or part["seconds_share"] >= 0.001


def report(result: dict) -> str:
    """The tables of one method's :func:`breakdown`."""
    r = result
    first = f", first {r['first_epochs']}" if r.get("first_epochs") else ""
    epochs = f"{r['epochs']} epoch{'' if r['epochs'] == 1 else 's'}"
    lines = [f"## {r['method']} on {r['scenario']}: {epochs} per experience{first}, {r['experiences']} "
             f"experiences, seed {r['seed']}, {r['device']}, {r['threads']} thread(s)",
             f"training: {flops_text(r['total_flops'])}FLOPs, {r['total_seconds']:.1f} s (steps without the counter's "
             f"overhead; {r['train_seconds_as_run']:.1f} s as run, {r['counted_steps']} of {r['steps']} steps counted)",
             "", "| phase | steps | FLOPs | share | seconds | share | ms/step |", "|---|---|---|---|---|---|---|"]
    for p in r["phases"]:
        per = f"{1e3 * p['seconds'] / p['steps']:.1f}" if p["steps"] else "–"
        flag = "*" if p["seconds_under_counter"] and p["kind"] == "steps" else ""
        lines.append(f"| {p['phase']} | {p['steps'] or '–'} | {flops_text(p['flops'])} | {pct(p['flops_share'])} | "
                     f"{p['seconds']:.2f}{flag} | {pct(p['seconds_share'])} | {per} |")
    lines.append(f"| total | {r['steps']} | {flops_text(r['total_flops'])} | 100 % | {r['total_seconds']:.2f} | "
                 "100 % | |")
    if any(p["seconds_under_counter"] and p["kind"] == "steps" for p in r["phases"]):
        lines.append("\n\\* some steps were timed only under the FLOPs counter (every step of their key was counted)")
    for group, table in r["parts"].items():
        main = table["rows_of_main_key"]
        lines += ["", f"parts of a step: {group} ({table['steps']} steps; FLOPs from {table['counted_steps']} counted, "
                      f"seconds from {table['timed_steps']} "
                      f"{'counted (under the counter)' if table['seconds_under_counter'] else 'timed'}; rows of its "
                      f"most common step: batch {main['batch_rows']}, {main['classes_in_batch']} classes)",
                  "| part | rows | FLOPs/step | share | ms/step | share |", "|---|---|---|---|---|---|"]
        for part in (x for x in table["parts"] if _shown(x, "flops_per_step", "seconds_per_step")):
            lines.append(f"| {part['part']} | {part['rows'] or ''} | {flops_text(part['flops_per_step'])} | "
                         f"{pct(part['flops_share'])} | {1e3 * part['seconds_per_step']:.2f} | "
                         f"{pct(part['seconds_share'])} |")
        lines.append(f"| step | | {flops_text(table['flops_per_step'])} | 100 % | "
                     f"{1e3 * table['seconds_per_step']:.2f} | 100 % |")
    lines += ["", "upkeep, all experiences together", "| part | FLOPs | share | seconds | share |",
              "|---|---|---|---|---|"]
    for part in (x for x in r["upkeep_parts"] if _shown(x, "flops", "seconds")):
        lines.append(f"| {part['part']} | {flops_text(part['flops'])} | {pct(part['flops_share'])} | "
                     f"{part['seconds']:.2f} | {pct(part['seconds_share'])} |")
    check = r["whole_step_check"]
    if check["max_relative_deviation"] is not None:
        lines.append(f"\ncheck: a step counted whole against its parts' sum, {len(check['keys'])} keys: largest "
                     f"deviation {pct(check['max_relative_deviation'])}")
    return "\n".join(lines)


def ratios(results: dict) -> dict:
    """ctrl / DER (the first method against each other where neither is present) per scenario."""
    out = {}
    for scenario, by_method in results.items():
        methods = list(by_method)
        if len(methods) < 2:
            continue
        a, b = ("ctrl", "der") if {"ctrl", "der"} <= set(methods) else methods[:2]
        x, y = by_method[a], by_method[b]
        out[scenario] = {"pair": [a, b], "flops": x["total_flops"] / y["total_flops"],
                         "seconds": x["total_seconds"] / y["total_seconds"],
                         "seconds_as_run": x["train_seconds_as_run"] / y["train_seconds_as_run"],
                         "step_flops": sum(p["flops"] for p in x["phases"] if p["kind"] == "steps")
                         / max(1, sum(p["flops"] for p in y["phases"] if p["kind"] == "steps")),
                         "upkeep_flops": sum(p["flops"] for p in x["phases"] if p["kind"] == "upkeep")
                         / max(1, sum(p["flops"] for p in y["phases"] if p["kind"] == "upkeep")),
                         "steps": x["steps"] / max(1, y["steps"])}
    return out


def ratio_report(scenario: str, r: dict, results: dict) -> str:
    a, b = r["pair"]
    x, y = results[scenario][a], results[scenario][b]
    return "\n".join([
        f"## {scenario}: {a} / {b}", f"| | {a} | {b} | {a}/{b} |", "|---|---|---|---|",
        f"| training FLOPs | {flops_text(x['total_flops'])} | {flops_text(y['total_flops'])} | {r['flops']:.2f} |",
        f"| of which steps | {flops_text(sum(p['flops'] for p in x['phases'] if p['kind'] == 'steps'))} | "
        f"{flops_text(sum(p['flops'] for p in y['phases'] if p['kind'] == 'steps'))} | {r['step_flops']:.2f} |",
        f"| of which upkeep | {flops_text(sum(p['flops'] for p in x['phases'] if p['kind'] == 'upkeep'))} | "
        f"{flops_text(sum(p['flops'] for p in y['phases'] if p['kind'] == 'upkeep'))} | {r['upkeep_flops']:.2f} |",
        f"| training seconds (without the counter's overhead) | {x['total_seconds']:.1f} | {y['total_seconds']:.1f} | "
        f"{r['seconds']:.2f} |",
        f"| training seconds as run | {x['train_seconds_as_run']:.1f} | {y['train_seconds_as_run']:.1f} | "
        f"{r['seconds_as_run']:.2f} |",
        f"| steps | {x['steps']} | {y['steps']} | {r['steps']:.2f} |"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", nargs="+", default=["mnist_5k", "cifar10_subset"],
                   help="scenario names (cifar10_subset: ../shared/data/cifar10-subset.npz); default both subsets")
    p.add_argument("--methods", nargs="+", default=["ctrl", "der"])
    p.add_argument("--epochs", type=int, default=None, help="epochs per experience (default: the quick preset's)")
    p.add_argument("--n-experiences", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps-per-phase", type=int, default=3,
                   help="N: steps counted part by part per key, and timed part by part per experience and phase")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write every number to this file")
    args = p.parse_args(argv)
    silence_warnings()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    results: dict = {}
    for scenario in args.scenario:
        path = scenario_name(scenario)
        if path.startswith("npz:") and not Path(path[4:]).exists():
            print(f"skipping {scenario}: {path[4:]} is not there", flush=True)
            continue
        for method in args.methods:
            result = breakdown(method, scenario, epochs=args.epochs, steps_per_phase=args.steps_per_phase,
                               seed=args.seed, n_experiences=args.n_experiences, device=device)
            results.setdefault(scenario, {})[method] = result
            print(report(result) + "\n", flush=True)
    found = ratios(results)
    for scenario, r in found.items():
        print(ratio_report(scenario, r, results) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": found}, indent=1, default=str))
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
