"""The pure game step of i-CTRL (no Avalanche), its configuration, and the two-player update's hooks."""

import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

from ctrl_bench.game import game_terms
from ctrl_bench.ictrl import PUBLISHED, RETENTION, ClassMasks, ICTRLConfig, Replay, game_step
from ctrl_bench.ictrl.config import options_table
from ctrl_bench.ictrl.recipe import step_parts
from ctrl_bench.ictrl.step import per_sample_drift, warmup_step
from ctrl_bench.rate import rate_reduction


class Normalised(nn.Module):
    """A linear map onto the unit sphere: a stand-in encoder without batch statistics."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, X):
        return nn.functional.normalize(self.linear(X.flatten(1)), dim=-1)


@pytest.fixture
def players():
    torch.manual_seed(0)
    f = Normalised(16, 8).double()
    g = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4))).double()
    return f, g


def batch(n=12, classes=(0, 1)):
    torch.manual_seed(1)
    X = torch.rand(n, 1, 4, 4, dtype=torch.float64) * 2 - 1
    y = torch.tensor(classes, dtype=torch.long).repeat_interleave(n // len(classes))
    return X, y


def masks(new, old, k=4):
    m = torch.zeros(2, k, dtype=torch.bool)
    m[0, list(new)] = True
    m[1, list(old)] = True
    return ClassMasks(m[0], m[1])


def test_without_old_classes_the_losses_are_the_games_objective(players):
    f, g = players
    X, y = batch()
    config = ICTRLConfig(pixel_weight=0.0, encoder_loss="no_discrimination", consistency_weight=0.0)
    result = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=step_parts(config))
    with torch.no_grad():
        Z = f(X)
        terms = game_terms(Z, f(g(Z)), y, 4, config.eps2)
    # NoDiscrimination: the encoder maximises ΔR(Z) + ΔR(Ẑ) only (it does not discriminate); the decoder minimises S
    assert result.encoder_loss.item() == pytest.approx(-(terms.rate_reduction_z + terms.rate_reduction_zhat).item())
    shared = terms.rate_reduction_z + terms.rate_reduction_zhat + config.new_weight * terms.pairwise[:2].sum()
    assert result.decoder_loss.item() == pytest.approx(shared.item())
    assert result.terms["constraint_old"].item() == 0.0 and "anchor_drift" not in result.terms


def test_the_papers_encoder_maximises_the_whole_shared_objective(players):
    f, g = players
    X, y = batch()
    config = ICTRLConfig(**PUBLISHED)
    assert step_parts(config) == ()  # the paper's values turn every step part off
    result = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=step_parts(config))
    assert result.encoder_loss.item() == pytest.approx(-result.terms["objective"].item())
    assert result.decoder_loss.item() == pytest.approx(result.terms["objective"].item())  # no pixel term


def test_old_classes_enter_through_the_constraint_and_the_anchors(players):
    f, g = players
    X, y = batch()
    torch.manual_seed(2)
    with torch.no_grad():
        images = torch.rand(6, 1, 4, 4, dtype=torch.float64) * 2 - 1
        codes = f(images)
        targets = f(images)  # the anchors' features when the experience started: f has not moved
    replay = Replay(codes, torch.tensor([2, 2, 2, 3, 3, 3]), images, targets)
    config = ICTRLConfig(anchor_weight=1000.0, pixel_weight=0.0, encoder_loss="no_discrimination",
                         consistency_weight=0.0)
    result = game_step(f, g, X, y, replay, masks((0, 1), (2, 3)), config, multiplier=5.0, parts=step_parts(config))
    assert result.terms["anchor_drift"].item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        Z = torch.cat([f(X), codes])
        terms = game_terms(Z, f(g(Z)), torch.cat([y, replay.labels]), 4, config.eps2)
    violation = terms.pairwise[2:].sum()
    assert result.terms["constraint_old"].item() == pytest.approx(violation.item())
    assert violation > 0
    assert result.encoder_loss.item() == pytest.approx(
        (5.0 * violation - terms.rate_reduction_z - terms.rate_reduction_zhat).item())
    # moving f moves the anchors' features off their targets, which the encoder then pays for
    with torch.no_grad():
        f.linear.weight.add_(0.3 * torch.randn_like(f.linear.weight))
    moved = game_step(f, g, X, y, replay, masks((0, 1), (2, 3)), config, multiplier=5.0, parts=step_parts(config))
    assert moved.terms["anchor_drift"].item() == pytest.approx(per_sample_drift(f(images), targets).mean().item())
    assert moved.terms["anchor_drift"] > 0.01


def test_an_encoder_with_batch_statistics_sees_real_decoded_and_anchor_images_in_one_call(players, monkeypatch):
    from ctrl_bench.ictrl import step

    f, g = players
    X, y = batch()
    images = torch.rand(6, 1, 4, 4, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        replay = Replay(f(images), torch.tensor([2, 2, 2, 3, 3, 3]), images, f(images))
    config = ICTRLConfig(anchor_weight=1000.0)
    # for an encoder that maps each image alone, encoding the new batch once or in the joint call is one function
    once = game_step(f, g, X, y, replay, masks((0, 1), (2, 3)), config, multiplier=5.0, parts=step_parts(config))
    monkeypatch.setattr(step, "normalises_over_the_batch", lambda encoder: True)
    joint = game_step(f, g, X, y, replay, masks((0, 1), (2, 3)), config, multiplier=5.0, parts=step_parts(config))
    assert joint.encoder_loss.item() == pytest.approx(once.encoder_loss.item(), rel=1e-12)
    assert joint.decoder_loss.item() == pytest.approx(once.decoder_loss.item(), rel=1e-12)
    monkeypatch.undo()
    # with BatchNorm, the call is joint: the batch statistics f sees hold all 12 + 18 + 6 images
    bn = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8)).double()
    sizes = []
    bn[2].register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    encoder = nn.Sequential(bn, Normalised(8, 8).double())
    assert step.normalises_over_the_batch(encoder) and not step.normalises_over_the_batch(f)
    with torch.no_grad():
        replay = Replay(encoder(images), replay.labels, images, encoder(images))
    sizes.clear()
    game_step(encoder, g, X, y, replay, masks((0, 1), (2, 3)), config, multiplier=5.0, parts=step_parts(config))
    assert sizes == [12, 12 + 18 + 6]  # the codes' gradient-free pass, then the one joint call


def test_the_encoders_own_move_gives_the_decoder_no_gradient_and_no_pixel_term(players):
    """decoder_grad=False (the encoder's own move with alternating updates) decodes without gradient:
    an encoder loss with terms of the decoded images (here NoDiscrimination's ΔR(Ẑ)) then reaches g
    nowhere, where with decoder_grad=True it does; and g gets no pixel term."""
    f, g = players
    X, y = batch()
    config = ICTRLConfig(encoder_loss="no_discrimination")
    parts = step_parts(config)
    result = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, decoder_grad=False,
                       parts=parts)
    assert "pixel_error" not in result.terms
    grads = torch.autograd.grad(result.encoder_loss, list(f.parameters()) + list(g.parameters()), allow_unused=True)
    assert all(g_ is not None for g_ in grads[:2]) and all(g_ is None for g_ in grads[2:])
    full = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=parts)
    through = torch.autograd.grad(full.encoder_loss, list(g.parameters()), retain_graph=True, allow_unused=True)
    assert all(g_ is not None for g_ in through)  # with g's gradient, the same loss does reach g
    assert full.terms["pixel_error"] > 0
    weight = config.pixel_weight
    assert full.decoder_loss.item() == pytest.approx(full.terms["objective"].item() + weight * full.terms["pixel_error"].item())


def test_without_parts_the_step_is_the_papers_game_whatever_the_config(players):
    """parts=() (the default): encoder C − S, decoder S + C, and none of the recipe's terms, even with
    a config whose options turn the recipe's parts on (the strategy passes its parts itself)."""
    f, g = players
    X, y = batch()
    images = torch.rand(6, 1, 4, 4, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        replay = Replay(f(images), torch.tensor([2, 2, 2, 3, 3, 3]), images, f(images))
    result = game_step(f, g, X, y, replay, masks((0, 1), (2, 3)), ICTRLConfig(), multiplier=5.0)
    objective, constraint = result.terms["objective"].item(), result.terms["constraint_old"].item()
    assert result.encoder_loss.item() == pytest.approx(5.0 * constraint - objective)
    assert result.decoder_loss.item() == pytest.approx(objective + 5.0 * constraint)
    assert not {"anchor_drift", "drawing_drift", "pixel_error"} & set(result.terms)


@pytest.mark.parametrize("pixel_weight", [300.0, 0.0])
def test_the_warm_up_is_an_autoencoder_step_with_the_rate_reduction_of_real_features(players, pixel_weight):
    """warmup_step (DecoderWarmup): g's loss is w·‖g(f(x)) − x‖² alone (w = pixel_weight, 1 where it is
    0); f's is −ΔR(f(X) | y) plus the same error, whose gradient reaches f through g; one f pass and one
    decode."""
    f, g = players
    X, y = batch()
    config = ICTRLConfig(pixel_weight=pixel_weight)
    weight = pixel_weight or 1.0
    calls = []
    hooks = [m.register_forward_pre_hook(lambda module, inputs, name=name: calls.append(name))
             for name, m in (("f", f), ("g", g))]
    warm = warmup_step(f, g, X, y, config)
    for hook in hooks:
        hook.remove()
    assert calls == ["f", "g"]
    with torch.no_grad():
        error = ((g(f(X)) - X) ** 2).flatten(1).mean(1).mean().item()
        rate = rate_reduction(f(X), y, config.eps2).item()
    assert warm.terms["pixel_error"].item() == pytest.approx(error)
    assert warm.decoder_loss.item() == pytest.approx(weight * error)
    assert warm.encoder_loss.item() == pytest.approx(-rate + weight * error)
    through = torch.autograd.grad(-rate_reduction(f(X), y, config.eps2)
                                  + weight * ((g(f(X)) - X) ** 2).flatten(1).mean(1).mean(), list(f.parameters()))
    for a, b in zip(torch.autograd.grad(warm.encoder_loss, list(f.parameters()), retain_graph=True), through):
        torch.testing.assert_close(a, b)
    direct = torch.autograd.grad(weight * ((g(f(X).detach()) - X) ** 2).flatten(1).mean(1).mean(), list(g.parameters()))
    for a, b in zip(torch.autograd.grad(warm.decoder_loss, list(g.parameters())), direct):
        torch.testing.assert_close(a, b)


def old_codes(per_class=3, classes=(2, 3)):
    """Memory prototypes of the old classes: unit codes (constants) and their labels."""
    torch.manual_seed(2)
    codes = nn.functional.normalize(torch.randn(per_class * len(classes), 8, dtype=torch.float64), dim=1)
    return codes, torch.tensor(classes).repeat_interleave(per_class)


def f_gradient(loss, f):
    return [grad.clone() for grad in torch.autograd.grad(loss, list(f.parameters()), retain_graph=True)]


def test_real_features_f_maximises_the_rate_reduction_of_the_real_rows_and_g_plays_the_papers_game(players):
    """encoder_loss="real" (RealFeatures), no anchors, no warm-up: f's loss is −ΔR(Z | y) of the real
    rows Z = [f(X_new); Z_old] (rate_reduction, num_classes = max label + 1), which takes no term of
    the decoded images, so that changing g's weights changes neither it nor its gradient in f (where
    NoDiscrimination's ΔR(Ẑ) does); g's loss is the paper's S + C plus w_p times its pixel error."""
    f, g = players
    X, y = batch()
    codes, old_labels = old_codes()
    replay = Replay(codes, old_labels)  # prototypes drawn from memory: no anchor images
    config = ICTRLConfig(encoder_loss="real", consistency_weight=0.0)
    parts = step_parts(config)
    names = [type(part).__name__ for part in parts]
    assert "RealFeatures" in names and "NoDiscrimination" not in names
    classes = masks((0, 1), (2, 3))
    result = game_step(f, g, X, y, replay, classes, config, multiplier=5.0, parts=parts)
    labels = torch.cat([y, old_labels])
    with torch.no_grad():
        Z = torch.cat([f(X), codes])
        rate = rate_reduction(Z, labels, config.eps2, int(labels.max()) + 1)
        terms = game_terms(Z, f(g(Z)), labels, 4, config.eps2)
        error = ((g(f(X)) - X) ** 2).flatten(1).mean(1).mean()
    assert rate > 0.1
    assert result.encoder_loss.item() == pytest.approx(-rate.item(), rel=1e-12)
    assert result.encoder_loss.item() == pytest.approx(-terms.rate_reduction_z.item(), rel=1e-12)
    assert "anchor_drift" not in result.terms
    # g: the paper's S + C (γ = 5, the fixed penalty) and its pixel error on the new batch
    shared = terms.rate_reduction_z + terms.rate_reduction_zhat + config.new_weight * terms.pairwise[:2].sum()
    penalty = 5.0 * terms.pairwise[2:].sum()
    assert penalty > 0 and error > 0
    assert result.decoder_loss.item() == pytest.approx((shared + penalty + config.pixel_weight * error).item(),
                                                       rel=1e-10)
    assert result.terms["pixel_error"].item() == pytest.approx(error.item())
    # f's loss never reaches g ...
    unused = torch.autograd.grad(result.encoder_loss, list(g.parameters()), retain_graph=True, allow_unused=True)
    assert all(grad is None for grad in unused)
    # ... and g's weights change nothing of it, where they change NoDiscrimination's (ΔR(Ẑ)) and g's own loss
    discriminating = ICTRLConfig(encoder_loss="no_discrimination", consistency_weight=0.0)
    before = f_gradient(result.encoder_loss, f)
    other = game_step(f, g, X, y, replay, classes, discriminating, 5.0, parts=step_parts(discriminating))
    other_before = f_gradient(other.encoder_loss, f)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.5 * torch.randn_like(p))
    moved = game_step(f, g, X, y, replay, classes, config, multiplier=5.0, parts=parts)
    other_moved = game_step(f, g, X, y, replay, classes, discriminating, 5.0, parts=step_parts(discriminating))
    assert moved.decoder_loss.item() != pytest.approx(result.decoder_loss.item(), rel=1e-3)
    assert moved.encoder_loss.item() == result.encoder_loss.item()
    assert all(torch.equal(a, b) for a, b in zip(f_gradient(moved.encoder_loss, f), before))
    assert not all(torch.allclose(a, b) for a, b in zip(f_gradient(other_moved.encoder_loss, f), other_before))


def test_real_features_then_the_anchors_drift_and_the_warm_ups_pixel_error(players):
    """RealFeatures replaces f's loss by −ΔR(Z | y); AnchorHold then adds w_a times the anchors' cosine
    drift, and in the warm-up DecoderWarmup adds w_p times g's pixel error on the new batch through
    f. Without BatchNorm in f, the new batch, the anchors and the decoded images each go through f in
    their own call, so f's gradient still takes nothing of the decoded images (nor of g) outside the
    warm-up."""
    f, g = players
    X, y = batch()
    codes, old_labels = old_codes()
    torch.manual_seed(3)
    images = torch.rand(6, 1, 4, 4, dtype=torch.float64) * 2 - 1
    with torch.no_grad():  # the anchors' features when the experience started: f has moved since
        targets = nn.functional.normalize(f(images) + 0.3 * torch.randn(6, 8, dtype=torch.float64), dim=1)
    replay = Replay(codes, old_labels, images, targets)
    config = ICTRLConfig(encoder_loss="real", anchor_weight=1000.0, pixel_weight=300.0, consistency_weight=0.0)
    parts, classes = step_parts(config), masks((0, 1), (2, 3))
    sizes = []
    hook = f.linear.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    result = game_step(f, g, X, y, replay, classes, config, multiplier=5.0, parts=parts)
    hook.remove()
    assert sizes == [12, 6, 12 + 6]  # the new batch, the anchors, the decoded images: three calls
    labels = torch.cat([y, old_labels])
    with torch.no_grad():
        rate = rate_reduction(torch.cat([f(X), codes]), labels, config.eps2, int(labels.max()) + 1)
        drift = per_sample_drift(f(images), targets).mean()
    assert drift > 0.01
    assert result.terms["anchor_drift"].item() == pytest.approx(drift.item())
    assert result.encoder_loss.item() == pytest.approx((-rate + 1000.0 * drift).item(), rel=1e-10)
    before = f_gradient(result.encoder_loss, f)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.5 * torch.randn_like(p))
    moved = game_step(f, g, X, y, replay, classes, config, multiplier=5.0, parts=parts)
    assert all(torch.equal(a, b) for a, b in zip(f_gradient(moved.encoder_loss, f), before))


def test_drawing_consistency_pulls_fs_features_of_gs_drawings_onto_the_real_features(players):
    """DrawingConsistency adds w_c · mean_i (1 − ⟨f(g(z_i)), sg(z_i)⟩), z_i = f(x_i), to f's loss and
    nothing to g's in a first experience of two classes or more (nowhere else): its gradient in f is that
    of the term with the real features held as constants, and it is 0 where g draws each image exactly as
    f sees it (g = f⁻¹ on the sphere)."""
    f, g = players
    X, y = batch()
    config = ICTRLConfig(encoder_loss="real", consistency_weight=100.0, pixel_weight=0.0, anchors_per_class=0)
    parts = step_parts(config)
    assert [type(part).__name__ for part in parts] == ["RealFeatures", "DrawingConsistency"]
    result = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=parts)
    without = dataclasses.replace(config, consistency_weight=0.0)
    plain = game_step(f, g, X, y, None, masks((0, 1), ()), without, multiplier=1.0, parts=step_parts(without))
    Z = f(X)
    drift = (1 - (f(g(Z.detach())) * Z.detach()).sum(1)).mean()
    assert drift.item() > 0.05
    assert result.terms["drawing_drift"].item() == pytest.approx(drift.item(), rel=1e-12)
    assert result.encoder_loss.item() == pytest.approx(plain.encoder_loss.item() + 100.0 * drift.item(), rel=1e-12)
    assert result.decoder_loss.item() == pytest.approx(plain.decoder_loss.item(), rel=1e-12)
    expected = torch.autograd.grad(-rate_reduction(Z, y, config.eps2, 2) + 100.0 * drift, list(f.parameters()))
    for a, b in zip(f_gradient(result.encoder_loss, f), expected):
        torch.testing.assert_close(a, b)
    # only in the first experience (no old classes), and only where it has two classes or more
    codes, old_labels = old_codes()
    later = game_step(f, g, X, y, Replay(codes, old_labels), masks((0, 1), (2, 3)), config, 1.0, parts=parts)
    alone = game_step(f, g, X, torch.zeros_like(y), None, masks((0,), ()), config, 1.0, parts=parts)
    assert "drawing_drift" not in later.terms and "drawing_drift" not in alone.terms
    # g = f⁻¹: f(g(z)) = z for every unit z, and the term vanishes
    torch.manual_seed(4)
    square = Normalised(16, 16).double()
    with torch.no_grad():
        square.linear.bias.zero_()
        inverse = nn.Linear(16, 16, bias=False).double()
        inverse.weight.copy_(torch.linalg.inv(square.linear.weight))
    exact = game_step(square, nn.Sequential(inverse, nn.Unflatten(1, (1, 4, 4))), X, y, None, masks((0, 1), ()),
                      config, multiplier=1.0, parts=parts)
    assert abs(exact.terms["drawing_drift"].item()) < 1e-10


def test_the_step_runs_without_avalanche():
    code = "import sys, ctrl_bench.ictrl.step, ctrl_bench.ictrl.config; assert 'avalanche' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_config_is_the_one_place_of_the_defaults_and_the_papers_values():
    assert PUBLISHED == {"eps2": 1.0, "lr": 1e-4, "betas": (0.5, 0.999), "new_weight": 10.0, "gamma": 1.0,
                         "alternate": True, "n_directions": 12, "replay_ratio": None, "n_components": 15,
                         "decoder_warmup": 0.0, "first_steps": 0, "decoder_finish": 0.0, "encoder_restart": 0,
                         "encoder_loss": "game", "anchors_per_class": 0,
                         "anchor_weight": 0.0, "consistency_weight": 0.0, "pixel_weight": 0.0, "drift_map": 0.0, "classifier_noise": 0.0,
                         "class_spread": False}
    assert set(RETENTION) == {"decoder_warmup", "first_steps", "decoder_finish", "encoder_restart",
                              "encoder_loss", "anchors_per_class", "anchor_weight", "consistency_weight",
                              "pixel_weight",
                              "drift_map", "classifier_noise", "class_spread"}
    with pytest.raises(ValueError, match="anchor_weight must be ≥ 0"):
        ICTRLConfig(anchor_weight=-1.0)
    with pytest.raises(ValueError, match="encoder_restart must be ≥ 0"):
        ICTRLConfig(encoder_restart=-1)
    with pytest.raises(ValueError, match=r"replay_ratio must be > 0 and finite \(or none\)"):
        ICTRLConfig(replay_ratio=0.0)
    with pytest.raises(ValueError, match="lr must be > 0 and finite"):
        ICTRLConfig(lr=float("inf"))


def test_docs_hold_the_options_table_the_config_writes():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "ictrl.md"
    assert options_table() in docs.read_text(), "docs/ictrl.md: paste what options_table() prints"
