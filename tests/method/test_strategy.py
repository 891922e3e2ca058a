import copy
import glob

import numpy as np
import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import TensorboardLogger
from avalanche.training.plugins import EvaluationPlugin

from baselines.ctrl import memory_floats as ctrl_memory_floats
from helpers import make_images
from ctrl_bench import ICTRL, build_autoencoder, game_terms
from ctrl_bench.ictrl.config import ICTRLConfig
from ctrl_bench.memory import drift_map
from scenarios import build_scenario


def make_strategy(evaluator=None, **options):
    f, g = build_autoencoder("conv", (1, 28, 28), feature_dim=32, size="tiny")
    evaluator = evaluator or EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])
    defaults = dict(train_epochs=12, train_mb_size=96, eval_mb_size=256, lr=1e-3, n_directions=6,
                    n_prototypes=48, n_components=6, new_weight=1.0, gamma=100.0)
    return ICTRL(encoder=f, decoder=g, evaluator=evaluator, **{**defaults, **options})


def closed_loop_terms(strategy, dataset, decoder=None, num_classes=4):
    """The game's terms on a whole experience, measured as a training step measures them:
    Z = f(X), X̂ = g(Z), one f call over [X; X̂] with batch statistics."""
    X = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y = torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])
    decoder = decoder or strategy.decoder
    state = copy.deepcopy(strategy.model.state_dict())  # keep BatchNorm running statistics untouched
    strategy.model.train()
    decoder.train()
    with torch.no_grad():
        features = strategy.encoder(torch.cat([X, decoder(strategy.encoder(X))]))
    strategy.model.load_state_dict(state)
    return game_terms(features[:len(X)], features[len(X):], y, num_classes, strategy.config.eps2)


@pytest.mark.parametrize("alternate", [True, False], ids=["alternating", "simultaneous"])
def test_one_experience_raises_rate_reduction_and_the_decoder_move_lowers_pairwise_terms(tiny_npz, alternate):
    """The game's encoder move raises ΔR(Z); its decoder move (gradient through f into g) lowers
    Σ_j ΔR(Z_j, Ẑ_j) for that encoder. In a short run the encoder, which maximises the same pairwise
    terms, can keep the full game's sum from falling, so the decoder's move is checked with f held, for
    twice the game's epochs. There is no decoder warm-up (``decoder_warmup=0``), in which f would also
    learn as an autoencoder's encoder: every epoch is the game's, so only the game moves f. f plays the
    game's loss without its discriminating term (``encoder_loss="no_discrimination"``, the default
    until ``real``, whose f takes no term of the decoded images): the numbers below were measured with
    it. Measured, the sum after g's move over the sum before (alternating, simultaneous): 0.71, 0.69 with
    1 thread; 0.68, 0.62 with 2 (ΔR(Z) 1.12 → 1.67 in the game). With a pixel-only warm-up of g (before
    the warm-up always trained f too) it was 0.59, 0.40 and 0.67, 0.42. DrawingConsistency is off
    (``consistency_weight=0``): its term of the decoded images would move f too."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_mb_size=24, train_epochs=8, alternate=alternate, decoder_warmup=0.0,
                             encoder_loss="no_discrimination", consistency_weight=0.0)
    experience = scenario.benchmark.train_stream[0]
    classes = experience.classes_in_this_experience
    before = closed_loop_terms(strategy, experience.dataset)
    strategy.train(experience)
    after_game = closed_loop_terms(strategy, experience.dataset)
    assert after_game.rate_reduction_z > before.rate_reduction_z + 0.3

    strategy.optimizer.param_groups[0]["lr"] = 0.0  # hold f: only g moves
    strategy.train_epochs = 16
    strategy.train(experience)
    after_decoder = closed_loop_terms(strategy, experience.dataset)
    assert after_decoder.rate_reduction_z.item() == pytest.approx(after_game.rate_reduction_z.item(), rel=0.05)
    assert after_decoder.pairwise[classes].sum() < 0.8 * after_game.pairwise[classes].sum()


def test_constraint_on_old_classes_stays_small(tiny_npz):
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy()
    first, second = scenario.benchmark.train_stream
    strategy.train(first)
    old = first.classes_in_this_experience
    Z_old, y_old = strategy.memory.sample()
    initial_decoder = make_strategy()
    with torch.no_grad():
        untrained = game_terms(Z_old, initial_decoder.encoder.eval()(initial_decoder.decoder.eval()(Z_old)),
                               y_old, 4, 1.0).pairwise[old].sum()
    strategy.train(second)
    with torch.no_grad():
        trained = game_terms(Z_old, strategy.encoder.eval()(strategy.decoder.eval()(Z_old)), y_old, 4, 1.0).pairwise[old].sum()
    assert float(trained) < 0.5 * float(untrained)
    assert sorted(strategy.memory.classes) == [0, 1, 2, 3]


def first_experience_accuracy_after_the_second(npz: str, **options) -> float:
    """A CRATE pair (ICTRL's defaults, shortened) on 8 classes in 2 experiences: accuracy on the
    first experience's test images once the second is learned, memory-only."""
    scenario = build_scenario(f"npz:{npz}", n_experiences=2, seed=0)
    f, g = build_autoencoder("crate", (1, 28, 28), feature_dim=32, size="tiny")
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    short = dict(train_mb_size=64, n_directions=6, n_prototypes=48, n_components=6, anchors_per_class=64)
    strategy = ICTRL(encoder=f, decoder=g, evaluator=evaluator, **{**short, **options})
    for i, experience in enumerate(scenario.benchmark.train_stream):
        strategy.train_epochs = 60 if i == 0 else 30  # a longer first experience: the test's own short lengths
        strategy.train(experience)
    results = strategy.eval(scenario.benchmark.test_stream[:1])
    return float(results["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"])


@pytest.mark.slow
def test_the_retention_options_keep_the_first_experience_classes(tmp_path):
    """With the published game (the encoder also discriminates real from decoded images, no anchors,
    no pixel term) real images of old classes drift off their stored subspaces; with the defaults
    they stay. Measured with 2 threads, over seeds 0 1 2 of the scenario, with the defaults before
    encoder_loss=real and decoder_finish=0.6 (no_discrimination, 0.3): 0.945, 0.961, 0.977 with the
    defaults, 0.828, 0.875, 0.695 without (with 10 epochs in the second experience the published game
    drifted too little to tell them apart: 0.92, 0.96, 0.84 without against 0.875, 0.945, 0.953)."""
    x_train, y_train = make_images(8, 32, seed=0)
    x_test, y_test = make_images(8, 32, seed=1)
    npz = tmp_path / "bars8.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    kept = first_experience_accuracy_after_the_second(str(npz))
    without = first_experience_accuracy_after_the_second(
        str(npz), encoder_loss="game", anchors_per_class=0, anchor_weight=0.0, pixel_weight=0.0)
    assert kept >= 0.9  # 4 old classes among 8: chance is 0.125
    assert without < kept - 0.05


def test_memory_holds_only_feature_statistics(tiny_npz):
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_epochs=1)
    strategy.train(scenario.benchmark.train_stream[0])
    K, d, r = 2, 32, 6
    assert strategy.memory.size_in_floats() == K * (d + r * d + r + 1)
    assert {k: tuple(v.shape) for k, v in strategy.memory.state_dict().items()} == {
        "labels": (K,), "means": (K, d), "directions": (K, r, d), "variances": (K, r), "residuals": (K,)}
    Z, y = strategy.memory.sample(10)
    assert Z.shape == (K * 10, d) and torch.allclose(Z.norm(dim=1), torch.ones(K * 10), atol=1e-5)
    assert ctrl_memory_floats(None, strategy) == strategy.memory.size_in_floats()  # what the results report


@pytest.mark.parametrize("class_spread", [False, True])
def test_a_noisy_classifier_scores_by_the_stored_statistics_likelihood(tiny_npz, class_spread):
    """s² = classifier_noise for every class, or with class_spread each class's own stored spread
    off its subspace plus classifier_noise."""
    from ctrl_bench.subspace import ppca_log_likelihood

    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_epochs=1, classifier_noise=0.05, class_spread=class_spread)
    strategy.train(scenario.benchmark.train_stream[0])
    memory, Z = strategy.memory, strategy.memory.sample(5)[0]
    noise = memory.residuals + 0.05 if class_spread else 0.05
    expected = ppca_log_likelihood(Z, memory.means, memory.directions, memory.variances, noise)
    assert torch.allclose(strategy.classifier.scores(Z, 4)[:, memory.labels], expected)
    if class_spread:  # the classes' spreads differ, so the scores are not those of one shared s²
        shared = ppca_log_likelihood(Z, memory.means, memory.directions, memory.variances, 0.05)
        assert not torch.allclose(expected, shared)


def test_tensorboard_holds_a_replay_image_per_learned_class(tiny_npz, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    logger = TensorboardLogger(str(tmp_path / "tb"))
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[logger])
    strategy = make_strategy(evaluator=evaluator, train_epochs=1)
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    logger.writer.flush()
    events = EventAccumulator(glob.glob(str(tmp_path / "tb" / "events.*"))[0], size_guidance={"images": 0}).Reload()
    tags = set(events.Tags()["images"])
    assert {f"replay/class_{c}" for c in range(4)} <= tags
    assert "reconstruction/current_classes" in tags and "features/abs_ZZt_replay" in tags
    assert {"ctrl/rate_reduction_z", "ctrl/constraint_old", "memory/floats"} <= set(events.Tags()["scalars"])
    assert len(events.Images("replay/class_0")) == 2  # after each experience


def test_augmented_lagrangian_multiplier_grows_while_violated(tiny_npz):
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_epochs=2, constraint="augmented_lagrangian", gamma=1.0, rho=5.0)
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    assert strategy.multiplier > 1.0


@pytest.mark.parametrize("options, message", [
    ({"constraint": "soft"}, "penalty, augmented_lagrangian"),
    ({"n_directions": 64}, "larger than the feature dimension 32"),
    ({"classifier": "knn"}, "memory, paper"),
    ({"encoder_steps": 0}, "at least 1"),
    ({"classifier_noise": -0.1}, "classifier_noise must be ≥ 0"),
    ({"decoder_finish": 1.0}, r"decoder_finish must be a fraction of an experience in \[0, 1\)"),
    ({"encoder_restart": -1}, "encoder_restart must be ≥ 0"),
    ({"encoder_restart": 2.5}, "encoder_restart must be an integer"),
    ({"replay_ratio": -0.5}, r"replay_ratio must be > 0 and finite \(or none\)"),
])
def test_bad_options_raise_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        make_strategy(**options)


def test_nan_in_a_loss_raises_a_clear_error(tiny_npz):
    from ctrl_bench import NonFiniteRateError

    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_epochs=1)
    with torch.no_grad():
        next(strategy.encoder.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteRateError, match="log-determinant is not finite"):
        strategy.train(scenario.benchmark.train_stream[0])


def test_every_step_fires_the_two_players_hooks_in_order(tiny_npz):
    class Recorder:
        """Records the update hooks of the first minibatch."""

        def __init__(self):
            self.events = []

        def __getattr__(self, name):
            if not name.startswith(("before_", "after_")):
                raise AttributeError(name)
            return lambda strategy, **kwargs: self.events.append(name)

    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    recorder = Recorder()
    for alternate in (True, False):
        recorder.events.clear()
        strategy = make_strategy(train_epochs=1, alternate=alternate, plugins=[recorder])
        strategy.train(scenario.benchmark.train_stream[0])
        first = recorder.events.index("before_training_iteration")
        assert recorder.events[first:first + 6] == [
            "before_training_iteration", "before_encoder_update", "after_encoder_update", "before_decoder_update",
            "after_decoder_update", "after_training_iteration"]


def replay_setting(old_classes: int, per_new_class: int):
    """A memory of ``old_classes`` old classes and 2 new ones (ids K − 2, K − 1), the masks a strategy
    holds, and a batch of ``per_new_class`` images of each new class: what ``draw`` reads."""
    from types import SimpleNamespace

    from ctrl_bench.memory import FeatureMemory

    memory = FeatureMemory(n_directions=4, n_prototypes=10)
    K = old_classes + 2
    memory.store(torch.nn.functional.normalize(torch.randn(20 * K, 16), dim=1), torch.arange(K).repeat_interleave(20))
    new, old = torch.zeros(K, dtype=torch.bool), torch.zeros(K, dtype=torch.bool)
    new[-2:], old[:-2] = True, True
    strategy = SimpleNamespace(memory=memory, masks=SimpleNamespace(new=new, old=old))
    return strategy, torch.tensor([K - 2, K - 1] * per_new_class)


@pytest.mark.parametrize("old_classes", [2, 3, 7, 8, 38])
def test_a_steps_replay_is_as_large_as_its_batch_whatever_the_number_of_old_classes(old_classes):
    """replay_ratio=1: exactly B codes per step (⌈B / K_old⌉ drawn of each old class, cut at random to
    B); replay_ratio=None (the paper's): as many of each old class as a new class has in the batch, 64
    here."""
    from ctrl_bench.ictrl.plugins import AnchorReplayPlugin

    strategy, batch = replay_setting(old_classes, 64)  # 128 new images
    for ratio, expected in ((1.0, 128), (None, 64 * old_classes)):
        replay = AnchorReplayPlugin(ICTRLConfig(replay_ratio=ratio, anchors_per_class=0)).draw(strategy, batch)
        assert len(replay.codes) == len(replay.labels) == expected
        assert set(replay.labels.tolist()) == set(range(old_classes))
    assert torch.equal(torch.bincount(replay.labels), torch.full((old_classes,), 64))  # the paper's: 64 each


@pytest.mark.parametrize("old_classes", [2, 3, 7, 38])
@pytest.mark.parametrize("ratio, per_new_class, total", [(0.5, 65, 65), (0.5, 101, 101), (0.001, 40, 1)])
@pytest.mark.parametrize("source", ["prototypes", "anchors"])
def test_a_step_replays_exactly_round_ratio_times_the_batch_of_old_class_codes(old_classes, ratio, per_new_class,
                                                                               total, source):
    """replay_ratio = r, a batch of B new images: exactly round(r·B) replayed codes (at least 1), drawn
    from memory prototypes or from the experience's anchors, whatever the number K of old classes
    (65 and 101 are multiples of none of 2, 3, 7 and 38, so ⌈r·B / K⌉·K codes, the old count, would be
    more), every one of an old class and none of a class more than ⌈total / K⌉ times."""
    import math

    from ctrl_bench.ictrl.plugins import AnchorReplayPlugin, replay_count

    strategy, batch = replay_setting(old_classes, per_new_class)
    assert replay_count(ratio, len(batch)) == total
    assert all(math.ceil(total / k) * k > total for k in (2, 3, 7, 38))  # the old count would be more
    plugin = AnchorReplayPlugin(ICTRLConfig(replay_ratio=ratio))
    if source == "anchors":  # 5 anchors per old class; each anchor's code holds its row's index
        n = 5 * old_classes
        y_M = torch.arange(old_classes).repeat_interleave(5)
        Z_M = torch.zeros(n, 16)
        Z_M[:, 0] = torch.arange(n, dtype=torch.float32)
        X_M, T_M = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), -Z_M
        plugin.anchors = (X_M, Z_M, y_M, T_M)
    replay = plugin.draw(strategy, batch)
    assert len(replay.codes) == len(replay.labels) == total
    assert set(replay.labels.tolist()) <= set(range(old_classes))  # old classes only
    assert int(torch.bincount(replay.labels).max()) <= math.ceil(total / old_classes)
    if source == "anchors":  # the rows of one anchor: its code, its label, its image and its target
        rows = replay.codes[:, 0].long()
        assert torch.equal(replay.labels, y_M[rows]) and torch.equal(replay.images.flatten(), rows.float())
        assert torch.equal(replay.targets, -replay.codes)
    else:
        assert replay.images is None and replay.targets is None


def test_replay_count_and_keep_total():
    """replay_count: round(r·B), at least 1, None for the paper's per-class replay; keep_total: that
    many of the picks, distinct rows of them at random, or all of them where it is None or not smaller."""
    from ctrl_bench.ictrl.plugins import keep_total, replay_count

    assert [replay_count(r, b) for r, b in ((0.5, 130), (1.0, 101), (0.25, 64), (0.001, 40), (2.0, 7))] == \
        [65, 101, 16, 1, 14]
    assert replay_count(None, 128) is None
    picks = torch.arange(100, 138)  # ⌈65 / 38⌉ = 2 of each of 19 classes, say
    kept = keep_total(picks, 25)
    assert len(kept) == 25 and len(set(kept.tolist())) == 25 and set(kept.tolist()) <= set(picks.tolist())
    assert keep_total(picks, None) is picks and keep_total(picks, 38) is picks and keep_total(picks, 50) is picks


@pytest.mark.slow
@pytest.mark.parametrize("batch", [64, 512])
def test_the_defaults_keep_the_first_experiences_classes_at_any_batch_size(tmp_path, batch):
    """ICTRL's defaults, 30 epochs per experience, two experiences of 1,000 generated images (an
    MNIST-subset experience): at batch 64 and at batch 512 (60 steps in the second experience) the
    first two classes stay learnt. At batch 512 the first experience's 60 steps would be too few for
    g to learn to draw; ``first_steps`` shrinks its batch to 62, for 510 steps."""
    from scenarios.synthetic import make_strokes

    x_train, y_train = make_strokes(4, 500, seed=0)
    x_test, y_test = make_strokes(4, 100, seed=1)
    npz = tmp_path / "strokes4.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    scenario = build_scenario(f"npz:{npz}", n_experiences=2, seed=0)
    f, g = build_autoencoder("crate", (1, 28, 28), feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
                     train_mb_size=batch)
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    results = strategy.eval(scenario.benchmark.test_stream)
    first = float(results["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"])
    assert first >= 0.8, f"batch {batch}: {first:.2f} on the first experience's classes after the second"


def test_a_short_first_experience_gets_its_steps_from_a_smaller_batch():
    """first_steps: the first experience (nothing in memory) takes at least that many steps, its batch
    shrunk to ⌊images · epochs / first_steps⌋ (not below 16, not above the batch size); later
    experiences keep the batch size."""
    strategy = make_strategy(train_epochs=30, train_mb_size=256, first_steps=240)
    assert strategy._experience_batch(500) == 62  # one MNIST-subset class: 8 steps an epoch, 240 in all
    assert strategy._experience_batch(1000) == 125
    assert strategy._experience_batch(100_000) == 256  # enough steps at the batch size
    assert strategy._experience_batch(50) == 16  # no smaller than MIN_FIRST_BATCH
    assert make_strategy(train_epochs=30, train_mb_size=256, first_steps=0)._experience_batch(500) == 256
    strategy.memory.store(torch.nn.functional.normalize(torch.randn(40, 32), dim=1), torch.zeros(40, dtype=torch.long))
    assert strategy._experience_batch(500) == 256  # a later experience


@pytest.mark.slow
def test_the_defaults_keep_the_first_class_of_six_learnt_one_at_a_time(tmp_path):
    """ICTRL's defaults, six experiences of one generated class each (the paper's one-class-at-a-time
    protocol): the first class, learnt alone (its rate reduction is zero, so only the warm-up's
    reconstruction shapes f before its statistics are stored), is still recognised after the sixth.
    Measured on 8 data seeds (1 thread), with the defaults of 7c91185 (before encoder_loss=real and
    decoder_finish=0.6): 0.94–1.00, as with f's Adam
    moments reset and no ramp of its learning rate; 0.40–0.70 with the moments kept (encoder_restart=0:
    they let the second experience throw the first class's anchors to cos 0.5)."""
    from scenarios.synthetic import make_strokes

    x_train, y_train = make_strokes(6, 200, seed=0)
    x_test, y_test = make_strokes(6, 50, seed=1)
    npz = tmp_path / "strokes6.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    torch.manual_seed(0)
    scenario = build_scenario(f"npz:{npz}", n_experiences=6, seed=0)
    f, g = build_autoencoder("crate", (1, 28, 28), feature_dim=128, size="tiny")
    strategy = ICTRL(encoder=f, decoder=g, evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    first = float(strategy.eval(scenario.benchmark.test_stream)["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"])
    assert first >= 0.8, f"{first:.2f} on the first class after six (chance: 0.17)"


@pytest.mark.parametrize("restart, second", [(10, [{6}, {12}]), (0, [{12}, {12}])])
def test_every_experience_starts_f_s_adam_moments_afresh(tiny_npz, restart, second):
    """encoder_restart > 0: at the start of every experience f's Adam optimiser drops its moments, so
    its step count starts again; g's counts on across experiences. 0: both count on (the reference).
    No decoder finish (``decoder_finish=0``): in it f's optimiser does not step, and with the default
    0.7 the second of the later experience's 2 epochs would be one."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)  # two experiences of 96 images
    strategy = make_strategy(train_epochs=2, train_mb_size=32, first_steps=0, encoder_restart=restart,
                             decoder_finish=0.0)
    counts = []
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
        counts.append([{int(state["step"]) for state in optimizer.state.values()}
                       for optimizer in (strategy.optimizer, strategy.decoder_optimizer)])
    assert counts == [[{6}, {6}], second]  # 3 batches an epoch, 2 epochs; (encoder, decoder)


def test_replay_ratio_none_from_the_command_line_is_the_papers_per_class_replay():
    """The command line reads the value none as None (--option ctrl.replay_ratio=none): the paper's
    replay, as many codes per old class as a new class has in the batch, not an unknown value."""
    from baselines import parse_option

    _, name, value = parse_option("ctrl.replay_ratio=none")
    assert name == "replay_ratio" and value is None and ICTRLConfig(**{name: value}).replay_ratio is None


def test_a_class_learnt_alone_is_one_class_of_the_memory_and_of_the_predictions(tiny_npz):
    """A first experience of one class (its ΔR(Z) is zero) is stored as that class alone; after the
    second experience the memory holds both, and the predictions name only classes it holds."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=4, seed=0)  # one class an experience
    strategy = make_strategy(train_epochs=1, train_mb_size=24, first_steps=0)
    first, second = (int(e.classes_in_this_experience[0]) for e in scenario.benchmark.train_stream[:2])
    strategy.train(scenario.benchmark.train_stream[0])
    assert strategy.memory.classes == [first]
    strategy.train(scenario.benchmark.train_stream[1])
    assert sorted(strategy.memory.classes) == sorted([first, second])
    Z, _ = strategy.features(scenario.benchmark.test_stream[0].dataset)
    assert set(strategy.scores(Z).argmax(1).tolist()) <= {first, second}
    _, labels = strategy.decode_memory(3)
    assert set(labels.tolist()) == {first, second}


def test_in_the_decoders_finish_the_encoder_holds_and_the_decoder_learns(tiny_npz):
    """``decoder_finish``: in the last part of a later experience f's parameters stay where they were
    (its optimiser does not step) while g's move; the first experience is not affected. ``step_phase``
    (read by the FLOPs counter) names each part."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    strategy = make_strategy(train_epochs=4, decoder_finish=0.5, decoder_warmup=0.25)
    snapshots, phases = [], []

    class Snapshots(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            phases.append(strategy.step_phase)

        def after_training_epoch(self, strategy, **kwargs):
            snapshots.append([[p.detach().clone() for p in module.parameters()]
                              for module in (strategy.encoder, strategy.decoder)])

    strategy.plugins.append(Snapshots())
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)

    def moved(a, b):
        return any(not torch.equal(x, y) for x, y in zip(a, b))

    first, later = snapshots[:4], snapshots[4:]
    assert moved(first[2][0], first[3][0])  # the first experience: f moves to the end
    assert moved(later[0][0], later[1][0])  # a later experience's game: f moves ...
    assert not moved(later[1][0], later[3][0])  # ... until its last half, where f holds
    assert moved(later[1][1], later[3][1])  # and g goes on learning
    assert phases == ["decoder warm-up"] + ["game"] * 5 + ["decoder finish"] * 2


def test_f_s_learning_rate_rises_over_the_first_steps_of_a_later_experience(tiny_npz):
    """encoder_restart=N: at the k-th step of every later experience f steps with lr · min(1, (k+1)/N);
    the first experience, and g throughout, at lr."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)  # two experiences of 96 images

    class Rates(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.seen = []

        def after_training_iteration(self, strategy, **kwargs):
            self.seen.append((strategy.clock.train_exp_counter, strategy.optimizer.param_groups[0]["lr"],
                              strategy.decoder_optimizer.param_groups[0]["lr"]))

    rates = Rates()
    strategy = make_strategy(train_epochs=2, train_mb_size=32, first_steps=0, lr=1e-3, encoder_restart=4,
                             plugins=[rates])
    for experience in scenario.benchmark.train_stream:
        strategy.train(experience)
    first = [(f, g) for exp, f, g in rates.seen if exp == 0]
    later = [(f, g) for exp, f, g in rates.seen if exp == 1]
    assert first == [(1e-3, 1e-3)] * 6
    assert [f for f, _ in later] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert [g for _, g in later] == [1e-3] * 6


@pytest.mark.parametrize("drift_map", [0.0, 1.0])
def test_the_drift_map_moves_old_statistics_toward_their_real_features_under_the_final_encoder(tiny_npz, drift_map):
    """drift_map = λ: after a later experience the old classes' stored means are those of the first
    experience moved by the map of f's drift, closer to the means of their real training images under
    the final f than unmoved; 0 leaves them as they were stored."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    first, second = scenario.benchmark.train_stream
    strategy = make_strategy(drift_map=drift_map)
    strategy.train(first)
    stored = strategy.memory.means.clone()
    old = strategy.memory.labels.clone()
    strategy.train(second)
    Z, y = strategy.features(first.dataset.eval())
    real = torch.stack([Z[y == c].mean(0) for c in old.tolist()])
    moved = strategy.memory.means[:len(old)]
    if not drift_map:
        torch.testing.assert_close(moved, stored)
        return
    error_before, error_after = (stored - real).norm(dim=1), (moved - real).norm(dim=1)
    assert (error_after < 0.7 * error_before).all(), (error_before, error_after)


def test_the_drift_map_is_the_map_of_the_features_of_the_experiences_images_and_the_anchors(tiny_npz):
    """drift_map = λ: the old classes' means after a later experience are the stored ones moved by
    W = drift_map([f_start(X); f_start(X_M)], [f_end(X); f_end(X_M)], λ), the ridge map fitted on the
    experience's images X and the anchors X_M, each encoded as the experience starts and as it ends."""
    scenario = build_scenario(f"npz:{tiny_npz}", n_experiences=2, seed=0)
    first, second = scenario.benchmark.train_stream

    class Start(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):  # after the strategy's own plugins
            self.features = strategy.memory_plugin.features_at_start
            self.anchors = strategy.replay_plugin.anchors

    start = Start()
    strategy = make_strategy(train_epochs=4, drift_map=1.0, plugins=[start])
    strategy.train(first)
    stored = strategy.memory.means.clone()
    strategy.train(second)
    images, _, _, anchors_before = start.anchors
    with torch.no_grad(), strategy.evaluating():
        anchors_after = strategy.encode(images)
    features_after, _ = strategy.features(second.dataset.eval())
    assert not torch.allclose(anchors_after, anchors_before)  # f moved: the map is not the identity
    before, after = torch.cat([start.features, anchors_before]), torch.cat([features_after, anchors_after])
    expected = stored @ drift_map(before, after, 1.0)
    torch.testing.assert_close(strategy.memory.means[:len(stored)], expected, rtol=1e-4, atol=1e-5)
