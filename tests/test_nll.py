"""The chunked LM-head NLL against the plain path (logits, then F.cross_entropy in fp32), in fp32 and under
bf16 autocast: the per-token NLL, and the gradients of every objective's loss through a tiny GPT-2."""


import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import phf.objectives.nll as nll_module
from phf.config import build_config
from phf.objectives import build_objective
from phf.objectives.nll import CHUNK_TOKENS, linear_token_nll, logits_token_nll, model_token_nll
from phf.training.value_head import with_value_head

# (NLL, gradient) tolerances relative to the largest magnitude. fp32: rounding only. bf16: both paths run the
# head's matmuls in bf16 and the log-softmax in fp32; they differ by where the gradients are rounded to bf16
# (after the scaling by the upstream gradient, or with the kept gradient before it) and by the order of the
# gradients' matmuls (chunked here, whole in autocast's): a few bf16 ulps (2^-8 = 4e-3) of the largest entries.
TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1e-3, 2e-2)}
KEPT, RECOMPUTED = nll_module.KEEP_GRADIENT_BYTES, 0  # backward keeps the logits' gradient, or recomputes it


@pytest.fixture(params=[KEPT, RECOMPUTED], ids=["kept", "recomputed"])
def budget(request, monkeypatch):
    monkeypatch.setattr(nll_module, "KEEP_GRADIENT_BYTES", request.param)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_nll_equals_cross_entropy_on_the_logits(dtype, budget):
    torch.manual_seed(0)
    batch, time = 3, CHUNK_TOKENS // 2 + 7  # several chunks, the last one partial
    hidden = torch.randn(batch, time, 32, requires_grad=True)
    weight = (torch.randn(300, 32) * 0.3).requires_grad_()
    targets, upstream = torch.randint(0, 300, (batch, time)), torch.rand(batch, time)  # per-token loss weights

    nll = linear_token_nll(hidden, weight, targets, dtype)
    (nll * upstream).sum().backward()
    got = nll.detach(), hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        reference = logits_token_nll(torch.nn.functional.linear(hidden, weight), targets)
    (reference * upstream).sum().backward()

    assert nll.dtype == torch.float32 and nll.shape == targets.shape
    nll_tol, grad_tol = TOLERANCES[dtype]
    assert relative_error(got[0], reference.detach()) < nll_tol
    assert relative_error(got[1], hidden.grad) < grad_tol
    assert relative_error(got[2], weight.grad) < grad_tol


OBJECTIVES = ["mle", "unlikelihood", "rwr", "awr"]  # filtering and conditional train with the MLE loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_has_the_same_loss_and_gradients_as_on_the_logits(name, dtype, budget):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=700, n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, activation_function="gelu_pytorch_tanh", bos_token_id=0, eos_token_id=0)
    model = (with_value_head(GPT2LMHeadModel) if name == "awr" else GPT2LMHeadModel)(config)
    ids, scores = torch.randint(0, 700, (5, 64)), torch.rand(5, 64) * (torch.rand(5, 64) < 0.3)
    settings = {"mle": {}, "unlikelihood": {"threshold": 0.1, "alpha": 0.5}, "rwr": {"beta": 1.0},
                "awr": {"alpha": 0.5, "beta": 1.0}}[name]
    objective = build_objective(build_config({"objective": {"name": name, **settings}}))
    bf16 = dtype == torch.bfloat16

    def loss_and_grads(chunked: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as accelerate runs the model's forward
            if chunked:
                nll, out = model_token_nll(model, ids, dtype)
            else:
                out = model(input_ids=ids, use_cache=False)
                nll = logits_token_nll(out.logits[:, :-1], ids[:, 1:])
        values = out.get("value_predictions")
        loss, _ = objective(nll, scores[:, 1:], None if values is None else values[:, :-1])
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss, grads = loss_and_grads(chunked=True)
    reference, reference_grads = loss_and_grads(chunked=False)
    nll_tol, grad_tol = TOLERANCES[dtype]
    assert relative_error(loss, reference) < 10 * nll_tol
    for parameter, grad in grads.items():
        assert relative_error(grad, reference_grads[parameter]) < grad_tol, parameter


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_confident_targets_keep_their_gradient(dtype, budget):
    """A target of p = 0.992 to 0.999 has d nll / d logit = p - 1, a tiny number: rounding p to bf16 before
    subtracting 1 would make it 0 or far off. Logits exactly m at the target and 0 elsewhere (identity head)."""
    vocab, margins = 64, torch.tensor([9.0, 10.0, 11.0])
    targets = torch.tensor([3, 17, 40])
    hidden = (torch.nn.functional.one_hot(targets, vocab) * margins[:, None]).float().requires_grad_()
    linear_token_nll(hidden, torch.eye(vocab), targets, dtype).sum().backward()
    p = margins.double().exp() / (margins.double().exp() + vocab - 1)  # p(target); the others share 1 - p
    got = hidden.grad.double()
    assert torch.allclose(got[torch.arange(3), targets], p - 1, rtol=1e-2, atol=0)
    others = got.masked_select(~torch.nn.functional.one_hot(targets, vocab).bool()).view(3, vocab - 1)
    assert torch.allclose(others, ((1 - p) / (vocab - 1))[:, None].expand_as(others), rtol=1e-2, atol=0)


@pytest.mark.parametrize("model_type", sorted(nll_module.LINEAR_HEAD_MODELS))
def test_the_linear_head_path_matches_the_logits_of_every_model_it_is_used_for(model_type):
    """The chunked path assumes the logits are `get_output_embeddings()(last hidden state)`, after the final norm;
    checked for every architecture it is used for, and the plain path taken for the others."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    size = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=64, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **size)).eval()
    ids = torch.randint(0, 300, (2, 24))
    with torch.no_grad():
        reference = logits_token_nll(model(input_ids=ids).logits[:, :-1], ids[:, 1:])
        chunked, _ = model_token_nll(model, ids)
        plain, _ = model_token_nll(model, ids, linear_head=False)
    assert relative_error(chunked, reference) < 1e-5
    assert torch.equal(plain, reference)
