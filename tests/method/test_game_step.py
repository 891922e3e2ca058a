"""The pure game step of i-CTRL (no Avalanche), its configuration, and the two-player update's hooks."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from ctrl_bench.game import game_terms
from ctrl_bench.ictrl import PUBLISHED, RETENTION, ClassMasks, ICTRLConfig, Replay, game_step
from ctrl_bench.ictrl.config import options_table
from ctrl_bench.ictrl.recipe import step_parts
from ctrl_bench.ictrl.step import cosine_drift


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
    config = ICTRLConfig(pixel_weight=0.0)
    result = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=step_parts(config))
    with torch.no_grad():
        Z = f(X)
        terms = game_terms(Z, f(g(Z)), y, 4, config.eps2)
    # the encoder maximises ΔR(Z) + ΔR(Ẑ) only (it does not discriminate); the decoder minimises S
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
    config = ICTRLConfig(anchor_weight=1000.0, pixel_weight=0.0)
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
    assert moved.terms["anchor_drift"].item() == pytest.approx(cosine_drift(f(images), targets).item())
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
    f, g = players
    X, y = batch()
    parts = step_parts(ICTRLConfig())
    result = game_step(f, g, X, y, None, masks((0, 1), ()), ICTRLConfig(), multiplier=1.0, decoder_grad=False,
                       parts=parts)
    assert "pixel_error" not in result.terms
    grads = torch.autograd.grad(result.encoder_loss, list(f.parameters()) + list(g.parameters()), allow_unused=True)
    assert all(g_ is not None for g_ in grads[:2]) and all(g_ is None for g_ in grads[2:])
    full = game_step(f, g, X, y, None, masks((0, 1), ()), ICTRLConfig(), multiplier=1.0, parts=parts)
    assert full.terms["pixel_error"] > 0
    weight = ICTRLConfig().pixel_weight
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
    assert not {"anchor_drift", "pixel_error", "encoder_pixel_error"} & set(result.terms)


@pytest.mark.parametrize("pixel_weight", [300.0, 0.0])
def test_in_the_warm_up_g_learns_its_pixel_error_alone_and_f_pays_it_through_g(players, pixel_weight):
    """warming_up=True with the recipe's parts (DecoderWarmup): g's loss is w·‖g(f(x)) − x‖² alone
    (w = pixel_weight, 1 where it is 0); f pays the same error through a decode that keeps its gradient,
    on top of its game loss; the encoder's own move gives g no loss."""
    f, g = players
    X, y = batch()
    config = ICTRLConfig(pixel_weight=pixel_weight)
    parts, weight = step_parts(config), pixel_weight or 1.0
    game = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=parts)
    warm = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=parts, warming_up=True)
    with torch.no_grad():
        error = ((g(f(X)) - X) ** 2).flatten(1).mean(1).mean().item()
    assert warm.terms["pixel_error"].item() == pytest.approx(error)
    assert warm.terms["encoder_pixel_error"].item() == pytest.approx(error)
    assert warm.decoder_loss.item() == pytest.approx(weight * error)
    assert warm.encoder_loss.item() == pytest.approx(game.encoder_loss.item() + weight * error)
    assert "encoder_pixel_error" not in game.terms
    # f's gradient of the warm-up's extra term is that of the error through g
    extra = torch.autograd.grad(warm.encoder_loss - game.encoder_loss, list(f.parameters()))
    through = torch.autograd.grad(weight * ((g(f(X)) - X) ** 2).flatten(1).mean(1).mean(), list(f.parameters()))
    for a, b in zip(extra, through):
        torch.testing.assert_close(a, b)
    own_move = game_step(f, g, X, y, None, masks((0, 1), ()), config, multiplier=1.0, parts=parts, warming_up=True,
                         decoder_grad=False)
    assert own_move.decoder_loss.item() == 0.0 and "pixel_error" not in own_move.terms
    assert own_move.encoder_loss.item() == pytest.approx(warm.encoder_loss.item())


def test_the_step_runs_without_avalanche():
    code = "import sys, ctrl_bench.ictrl.step, ctrl_bench.ictrl.config; assert 'avalanche' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_config_is_the_one_place_of_the_defaults_and_the_papers_values():
    assert PUBLISHED == {"eps2": 1.0, "lr": 1e-4, "betas": (0.5, 0.999), "new_weight": 10.0, "gamma": 1.0,
                         "alternate": True, "n_directions": 12, "replay_ratio": None, "n_components": 15,
                         "decoder_warmup": 0.0, "first_steps": 0, "decoder_finish": 0.0, "encoder_restart": 0,
                         "lone_class_split": False, "encoder_loss": "game", "anchors_per_class": 0,
                         "anchor_weight": 0.0, "pixel_weight": 0.0, "drift_map": 0.0, "classifier_noise": 0.0,
                         "class_spread": False}
    assert set(RETENTION) == {"decoder_warmup", "first_steps", "decoder_finish", "encoder_restart", "lone_class_split",
                              "encoder_loss", "anchors_per_class", "anchor_weight", "pixel_weight",
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
