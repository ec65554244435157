import math

import pytest
import torch

from phf.config import build_config
from phf.objectives import build_objective, mle
from phf.objectives.nll import logits_token_nll


def test_mle_against_hand_computed_values():
    # two positions, vocabulary of three: logits [0, ln 2, 0] -> p = [1/4, 1/2, 1/4]
    logits = torch.tensor([[[0.0, math.log(2), 0.0], [0.0, 0.0, 0.0]]])
    targets = torch.tensor([[1, 2]])
    loss, metrics = mle(logits_token_nll(logits, targets), torch.zeros(1, 2), None)
    expected = (-math.log(1 / 2) - math.log(1 / 3)) / 2
    assert loss.item() == torch.tensor(expected).item()
    assert metrics["nll"].item() == loss.item()


def test_filtering_and_conditional_use_the_mle_loss():
    # they are data transforms (phf.data.packing): the loss itself is MLE
    for name in ("mle", "filtering", "conditional"):
        assert build_objective(build_config({"objective": {"name": name}})) is mle


# Two predictions over a vocabulary of two: p(target) = 1/2 at position 0, 3/4 at position 1.
LOGITS = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]]])
TARGETS = torch.tensor([[1, 0]])
NLL = logits_token_nll(LOGITS, TARGETS)  # [log 2, log 4/3]
SCORES = torch.tensor([[0.0, 0.5]])  # the first target's segment is aligned, the second's is not


def test_unlikelihood_against_hand_computed_values():
    from phf.objectives.unlikelihood import Unlikelihood

    loss, metrics = Unlikelihood(threshold=0.0, alpha=0.5)(NLL, SCORES)
    # aligned: -log(1/2); misaligned: -0.5 * log(1 - 3/4) = 0.5 * log 4 = log 2
    assert loss.item() == pytest.approx((math.log(2) + math.log(2)) / 2, rel=1e-6)
    assert metrics["aligned_share"].item() == 0.5


def test_unlikelihood_threshold_zero_is_a_real_threshold():
    from phf.objectives.unlikelihood import Unlikelihood

    # with threshold 0, score 0.5 is misaligned; the reference code treated 0 as "no threshold" (all MLE)
    ul, _ = Unlikelihood(threshold=0.0)(NLL, SCORES)
    plain, _ = mle(NLL, SCORES, None)
    assert ul.item() != pytest.approx(plain.item())


def test_rwr_against_hand_computed_values():
    from phf.objectives.weighted import RWR

    loss, _ = RWR(beta=1.0)(NLL, SCORES)
    expected = (math.log(2) * 1.0 + math.log(4 / 3) * math.exp(-0.5)) / 2  # weight exp(R / beta), R = -score
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_awr_against_hand_computed_values():
    from phf.objectives.weighted import AWR

    values = torch.tensor([[-0.25, -0.25]])
    loss, metrics = AWR(alpha=0.5, beta=1.0)(NLL, SCORES, values)
    # advantages R - V = [0.25, -0.25]; value loss mean((V - R)^2) = 0.0625
    policy = (math.log(2) * math.exp(0.25) + math.log(4 / 3) * math.exp(-0.25)) / 2
    assert loss.item() == pytest.approx(0.5 * policy + 0.5 * 0.0625, rel=1e-6)
    assert metrics["value_loss"].item() == pytest.approx(0.0625)


def test_awr_weights_are_clipped_and_values_get_no_policy_gradient():
    from phf.objectives.weighted import AWR

    values = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    _, metrics = AWR(alpha=1.0, beta=0.1, max_weight=1000.0)(NLL, torch.zeros(1, 2), values)
    assert metrics["weight_max"].item() == 1000.0  # exp(10) clipped
    loss, _ = AWR(alpha=1.0, beta=1.0)(NLL, SCORES, values)
    loss.backward()
    assert values.grad.abs().sum() == 0  # with alpha = 1 only the (detached) weights see V


def test_rwr_is_awr_with_alpha_one_and_no_value_head():
    from phf.objectives.weighted import AWR, RWR

    torch.manual_seed(0)
    nll, scores = torch.rand(2, 5) * 5, torch.rand(2, 5)
    rwr, _ = RWR(beta=0.3)(nll, scores)
    awr, _ = AWR(alpha=1.0, beta=0.3)(nll, scores, torch.zeros(2, 5))
    assert rwr.item() == pytest.approx(awr.item(), rel=1e-6)


def test_trainer_shifts_scores_and_values_once():
    """Position j-1 predicts token j: its loss is weighed by token j's score, and the value that
    predicts token j's reward is the value head's output at position j-1 (docs/method.md)."""
    from collections import defaultdict
    from types import SimpleNamespace

    from transformers import GPT2Config, GPT2LMHeadModel

    from phf.training.trainer import PHFTrainer
    from phf.training.value_head import with_value_head

    seen = {}

    def spy(nll, scores, values):
        seen.update(nll=nll, scores=scores, values=values)
        return nll.sum() * 0, {}

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = with_value_head(GPT2LMHeadModel)(config).eval()
    ids, scores = torch.randint(0, 11, (2, 6)), torch.rand(2, 6)
    trainer = SimpleNamespace(objective=spy, _metrics=defaultdict(list), is_fsdp_enabled=False,
                              is_deepspeed_enabled=False, args=SimpleNamespace(bf16=False, fp16=False))
    PHFTrainer.compute_loss(trainer, model, {"input_ids": ids, "scores": scores})
    out = model(input_ids=ids)
    assert torch.equal(seen["scores"], scores[:, 1:])
    assert torch.allclose(seen["nll"], logits_token_nll(out.logits[:, :-1], ids[:, 1:]), atol=1e-6)
    assert torch.allclose(seen["values"], out["value_predictions"][:, :-1])
    assert (seen["values"] <= 0).all() and (seen["values"] >= -1).all()  # -sigmoid: rewards are <= 0


def test_each_objective_has_its_own_settings_and_refuses_anothers():
    from phf.config import ConfigError, load_config
    from phf.objectives import METHODS

    assert load_config("pep8", "awr").objective.alpha == 0.05  # the recipe's; AWR's own default is the paper's 0.5
    assert load_config("pep8", "mle", ["objective.name=awr"]).objective.alpha == 0.5
    assert load_config("pep8", "mle", ["objective.name=unlikelihood"]).objective.alpha == 1.0
    with pytest.raises(ConfigError, match=r"objective.beta does not apply to objective conditional \(its settings: "
                                          r"threshold, drop_token_fraction, num_levels"):
        load_config("pep8", "conditional", ["objective.beta=3"])
    with pytest.raises(ConfigError, match="'dpo' is not an objective; one of: mle, filtering, conditional"):
        load_config("pep8", "mle", ["objective.name=dpo"])
    assert [name for name, m in METHODS.items() if m.value_head] == ["awr"]
    assert [name for name, m in METHODS.items() if m.conditional] == ["conditional"]


def test_a_run_saved_with_every_objective_setting_still_resumes(tmp_path):
    """Runs of phf before one settings class per objective saved all of them in config.yaml, used or not."""
    import yaml

    from phf.config import load_config
    from phf.training.run_folder import check_same_training, differing_settings

    cfg = load_config("pep8", "rwr")
    old = cfg.model_dump()
    old["objective"] = {"name": "rwr", "threshold": 0.0, "filter_threshold": "p90", "drop_token_fraction": 0.0,
                        "num_levels": 2, "attribute_thresholds": {}, "cooldown_fraction": 0.0, "alpha": 1.0,
                        "beta": 10.0, "max_weight": 1000.0}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    check_same_training(cfg, tmp_path)  # no error: the unused settings are dropped, the used ones agree
    old["objective"]["beta"] = 1.0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert differing_settings(cfg, tmp_path) == {"objective.beta": (1.0, 10.0)}
