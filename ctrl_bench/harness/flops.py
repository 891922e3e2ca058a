"""What training cost, in floating-point operations and peak memory, counted the same way for every
method by ``torch.utils.flop_counter.FlopCounterMode``.

The mode counts the operations that have a FLOP formula (matrix products, convolutions, attention,
and here also the Cholesky factorisations and triangular solves of the rate terms), forward and
backward, of whatever runs while it is active: a method's extra passes (a decoder, replayed codes,
a frozen copy, buffer logits, distillation targets) are counted because they run. Element-wise
operations are not counted, as in fvcore and DeepSpeed's profiler.

Counting an operation costs Python time, so a training step is counted on a *stratified sample*:
the experience's planned steps (epochs × batches) are cut into K equal blocks, K = max(2, ⌈1 % of
the steps⌉), and the first step of each block stands for its block. The experience's training
FLOPs are Σ_blocks (FLOPs of the counted step × steps in the block), scaled by actual / planned
steps when a method trains more or fewer than planned. A method whose step changes within an
experience says which kind of step comes next in a ``step_phase`` attribute (any value that compares;
i-CTRL's decoder warm-up, game and finish), and the first step of every phase is counted as well and
starts a block of its own, so that no block straddles a change. Where every step of a phase costs the
same, the count is exact. The *upkeep* around the steps is counted whole: from the start of ``train``
to the first step (set-up: anchors decoded, a frozen copy made) and from the end of the last step to the end
of ``train`` (memories fitted, exemplars selected, class means stored). What happens between two
steps (loading the next batch, end-of-epoch bookkeeping) is not counted: data loading has no FLOPs,
and counting its many small operations would slow every run.
"""

from __future__ import annotations

import math
import resource
from contextlib import contextmanager

import torch
from avalanche.core import SupervisedPlugin
from torch.utils.flop_counter import FlopCounterMode

SAMPLE_FRACTION = 0.01  # of an experience's steps counted (at least MIN_SAMPLES)
MIN_SAMPLES = 2
COUNTING = (f"a stratified sample of the training steps ({100 * SAMPLE_FRACTION:g} %, at least {MIN_SAMPLES} per "
            "experience, and the first step of each phase of a method's step) scaled by the step count, plus the "
            "upkeep before the first and after the last step counted "
            "whole (torch.utils.flop_counter; matrix products, convolutions and the rate terms' factorisations)")


def _batch(shape) -> int:
    return math.prod(shape[:-2]) if len(shape) > 2 else 1


def cholesky_flops(a_shape, *args, **kwargs) -> int:
    """A Cholesky factorisation of n × n matrices: n³ / 3 multiply-adds each, 2 FLOPs per multiply-add."""
    n = a_shape[-1]
    return _batch(a_shape) * 2 * n**3 // 3


def triangular_solve_flops(a_shape, b_shape, *args, **kwargs) -> int:
    """Solving a triangular n × n system for k right-hand sides: n² k multiply-adds."""
    n, k = a_shape[-1], b_shape[-1]
    return max(_batch(a_shape), _batch(b_shape)) * n * n * k


# The linear algebra of the rate terms (log det via Cholesky, and its backward).
EXTRA_FORMULAS = {torch.ops.aten.linalg_cholesky_ex: cholesky_flops,
                  torch.ops.aten.linalg_solve_triangular: triangular_solve_flops}


class _NoModuleBreakdown:
    """Stands in for FlopCounterMode's module tracker, which hooks every module call and every output's
    gradient to file FLOPs under modules; only the total is read here, all under "Global"."""
    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def _counter() -> FlopCounterMode:
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    counter.mod_tracker = _NoModuleBreakdown()
    return counter


def counted(fn) -> tuple[object, int]:
    """(``fn()``, the FLOPs it ran), counted as training is (e.g. one continual evaluation)."""
    with _counter() as counter:
        result = fn()
    return result, int(counter.get_total_flops())


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what they measure): on CUDA the most memory tensors held since the last reset; on a
    CPU the process's peak resident set (the whole process, so in a run of several cells a high-water
    mark of the cells so far)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process max resident (CPU)"


class _StepBegins(SupervisedPlugin, supports_distributed=True):
    """The first plugin of the strategy: a step begins here, before any other plugin's work of it."""

    def __init__(self, owner: TrainingFlops):
        super().__init__()
        self.owner = owner

    def before_training_iteration(self, strategy, **kwargs):
        self.owner.step_begins(getattr(strategy, "step_phase", None))


class TrainingFlops(SupervisedPlugin, supports_distributed=True):
    """Counts each ``strategy.train(experience)`` call: ``step_flops`` (the sampled steps, scaled),
    ``upkeep_flops`` and ``peak_memory``, read after the call. It goes last among the plugins, so that
    its ``before_training`` / ``after_training`` enclose everything the others do, and its ``front``
    goes first, so that a step (every plugin's work of it included) lies between ``front``'s
    ``before_training_iteration`` and this plugin's ``after_training_iteration``."""

    def __init__(self):
        super().__init__()
        self.front = _StepBegins(self)
        self.step_flops = self.upkeep_flops = 0
        self.peak_memory, self.memory_kind = 0, ""
        self._mode: FlopCounterMode | None = None
        self._planned = self._step = 0
        self._sampled: list[tuple[int, int]] = []  # (step index, its FLOPs)
        self._samples: set[int] = {0}
        self._counting_step = False
        self._phase = None  # the step_phase of the step before
        self._epoch = self._epoch_steps = self._in_epoch = 0
        self._carried = 0  # FLOPs of the open window counted before a pause (:meth:`paused`)

    # the upkeep: everything between before_training and after_training but the steps
    def before_training(self, strategy, **kwargs):
        self.step_flops = self.upkeep_flops = 0
        self._planned = self._step = self._epoch = 0
        self._sampled, self._samples, self._phase, self._carried = [], {0}, None, 0
        if torch.device(strategy.device).type == "cuda":
            torch.cuda.reset_peak_memory_stats(strategy.device)
        self._enter()

    def after_training(self, strategy, **kwargs):
        self.upkeep_flops += self._exit()
        self.step_flops = self._scaled()
        self.peak_memory, self.memory_kind = peak_memory(torch.device(strategy.device))

    def before_training_epoch(self, strategy, **kwargs):
        self._epoch_steps, self._in_epoch = len(strategy.dataloader), 0
        self._epoch += 1
        if not self._planned:
            self._planned = max(1, strategy.train_epochs * self._epoch_steps)
            self._samples = self._sample_steps()

    def step_begins(self, phase=None) -> None:
        """A step begins: count it if it starts a block of the sample or a new ``phase``."""
        self.upkeep_flops += self._exit()
        self._counting_step = self._step in self._samples or phase != self._phase
        self._phase = phase
        if self._counting_step:
            self._enter()

    def after_training_iteration(self, strategy, **kwargs):
        if self._counting_step:
            self._sampled.append((self._step, self._exit()))
        self._step += 1
        self._in_epoch += 1
        if self._in_epoch == self._epoch_steps and self._epoch >= strategy.train_epochs:  # the last step: upkeep
            self._enter()

    def _sample_steps(self) -> set[int]:
        planned = max(self._planned, 1)
        k = min(planned, max(MIN_SAMPLES, math.ceil(SAMPLE_FRACTION * planned)))
        return {math.floor(j * planned / k) for j in range(k)}

    def _scaled(self) -> int:
        """Σ over the counted steps of their FLOPs × the steps of their block (up to the next counted
        step), × actual / planned."""
        if not self._sampled:
            return 0
        starts = [s for s, _ in self._sampled] + [max(self._planned, self._sampled[-1][0] + 1)]
        total = sum(f * (starts[i + 1] - starts[i]) for i, (_, f) in enumerate(self._sampled))
        return round(total * self._step / max(self._planned, 1))

    def _enter(self) -> None:
        self._mode = _counter()
        self._mode.__enter__()

    def _exit(self) -> int:
        carried, self._carried = self._carried, 0
        if self._mode is None:
            return carried
        mode, self._mode = self._mode, None
        mode.__exit__(None, None, None)
        return carried + int(mode.get_total_flops())

    @contextmanager
    def paused(self):
        """Nothing run inside the block is counted, whichever window (a sampled step, the upkeep) is
        open: the continual evaluation is not training. What the window counted before the pause is
        carried over to its end."""
        if self._mode is None:
            yield
            return
        self._carried = self._exit()
        try:
            yield
        finally:
            self._enter()

    def close(self) -> None:
        """Leave any counting mode still open (a run that stopped inside ``train``)."""
        self._exit()
