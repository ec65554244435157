"""A Llama-style model (rotary positions, SwiGLU, RMSNorm) through the pipeline as a GPT-2 goes: trained by
`phf train` on the scored corpus (every objective trains every parameter of one: test_train.py), saved as a plain
Hugging Face model, then sampled, evaluated (held-out loss, KL), scored by LocalLM and served."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from phf.cli import main
from phf.config import load_config
from phf.lm import LocalLM
from phf.lm.openai_compatible import OpenAICompatibleLM
from phf.lm.server import start_server
from phf.sampling.generate import context_window
from phf.training.model import build_model
from tests.helpers import TINY


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory, data_dir):
    run = tmp_path_factory.mktemp("llama") / "conditional"
    main(["train", "--method", "conditional", "--data", str(data_dir), "--output", str(run), *TINY,
          "model.architecture=llama"])
    return run


def test_a_llama_config_builds_rotary_swiglu_rmsnorm_with_tied_embeddings():
    cfg = load_config("pep8", "mle", ["model.architecture=llama", "model.n_embd=96", "model.n_head=4",
                                      "model.n_layer=2", "model.block_size=64"])
    tokenizer = type("Tok", (), {"eos_token_id": 0, "__len__": lambda self: 500})()
    model = build_model(cfg.model, tokenizer)
    c = model.config
    assert isinstance(model, LlamaForCausalLM) and c.hidden_act == "silu" and c.tie_word_embeddings
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.max_position_embeddings) == (96, 2, 4, 64)
    assert c.intermediate_size == 256  # 8/3 x 96 = 256, a multiple of 64
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert context_window(c) == 64


def test_a_trained_llama_is_a_plain_hugging_face_model(llama_run):
    model_dir = llama_run / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert type(model) is LlamaForCausalLM
    info = json.loads((model_dir / "phf.json").read_text())
    assert info["conditional"] and info["tokens_seen"] == 1024
    assert "llama" in (model_dir / "README.md").read_text().lower()  # the model card names the architecture


def test_sampling_and_evaluation_of_a_llama(llama_run, data_dir, tmp_path, capsys):
    model_dir = llama_run / "model"
    capsys.readouterr()
    main(["sample", "--model", str(model_dir), "-n", "3"])
    samples = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(samples) == 3 and all(isinstance(s["text"], str) and "<|" not in s["text"] for s in samples)
    main(["evaluate", "--model", str(model_dir), "--data", str(data_dir), "--output", str(tmp_path / "eval"),
          "--kl-reference", str(model_dir), "--kl-samples", "4"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["unconditional"]["num_samples"] == 4 and math.isfinite(metrics["unconditional"]["mean"])
    assert 0 < metrics["heldout_loss"] < math.inf and metrics["heldout_loss_deployed"] != metrics["heldout_loss"]
    assert metrics["kl_samples"] > 0 and metrics["kl_per_char"] == 0  # a model from itself


def test_local_and_served_llama_agree(llama_run):
    lm = LocalLM(llama_run / "model", batch_size=2)
    assert lm.window == 32
    texts = ["import os\n", "def f(a, b):\n    return a\n" * 8, ""]  # one longer than the context
    local = lm.log_likelihood(texts)
    assert all(math.isfinite(s.logprob) for s in local)
    with torch.no_grad():  # the first text's log-probability from one plain forward pass after the context
        ids = lm.context + lm.tokenize(texts[0])[0]
        logprobs = lm.loaded.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        direct = sum(logprobs[i - 1, ids[i]].item() for i in range(len(lm.context), len(ids)))
    assert local[0].logprob == pytest.approx(direct, abs=1e-4)
    server, thread, url = start_server(lm, "127.0.0.1", 0)
    try:
        remote = OpenAICompatibleLM(url, "llama", max_retries=0, timeout=30)
        for here, there in zip(local, remote.log_likelihood(texts), strict=True):
            assert there.tokens == here.tokens and there.logprob == pytest.approx(here.logprob, abs=1e-4)
        assert len(remote.generate(["", "import "], max_new_tokens=4)) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_left_padding_does_not_change_what_a_llama_writes(llama_run, guidance):
    """Prompts of different lengths share a left-padded batch: the padding must be masked in every pass, guidance's
    second, misaligned one too (rotary positions are relative, so an offset of them changes nothing). Near-greedy
    decoding (top-p 1e-6) makes the outputs comparable."""
    from phf.sampling.generate import load_model, sample

    cfg = load_config("pep8", "conditional", [*TINY, "sampling.top_p=1e-6", "sampling.min_new_tokens=0",
                                              f"sampling.guidance={guidance}"])
    loaded = load_model(llama_run / "model")
    prompts = ["import", "def join(a, b):\n    return os.path"]
    together = sample(loaded, cfg.sampling, prompts)
    assert together == [sample(loaded, cfg.sampling, [p])[0] for p in prompts]


def test_sampling_leaves_the_callers_random_state_alone(llama_run):
    """Training samples mid-run (the misalignment curve): the sampler's seed must not reset training's dropout."""
    from phf.sampling.generate import load_model, sample

    cfg = load_config("pep8", "conditional", TINY)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = sample(load_model(llama_run / "model"), cfg.sampling, ["", "import"])
    assert torch.equal(torch.get_rng_state(), state)
    assert sample(load_model(llama_run / "model"), cfg.sampling, ["", "import"]) == first  # its own seed still
