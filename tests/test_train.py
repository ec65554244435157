"""Training end to end on a tiny model: parameters move, resume is exact, control tokens are initialised."""

import json
import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    set_seed,
)

import phf.training.train as train_module
from phf.data.tokenizer import ALIGNED, MISALIGNED, load_tokenizer
from phf.evaluation.evaluate import evaluate
from phf.objectives import build_objective
from phf.sampling.generate import load_model, sample
from phf.training.model import build_model
from phf.training.train import train
from phf.training.value_head import with_value_head
from tests.helpers import generated_rows, tiny_config


def losses(run_dir):
    return {r["step"]: r["loss"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
            if "loss" in r}


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["mle", "filtering", "conditional", "unlikelihood", "rwr", "awr"])
def test_every_objective_trains_every_parameter(method, architecture, data_dir, tmp_path):
    settings = {"filtering": ["objective.filter_threshold=p75"], "unlikelihood": ["objective.alpha=0.5"],
                "awr": ["objective.alpha=0.5"]}
    cfg = tiny_config(method, f"model.architecture={architecture}", *settings.get(method, []))
    model_dir = train(cfg, data_dir, tmp_path)
    set_seed(cfg.training.seed)  # train() initialises the model right after the same call
    value_head = method == "awr"
    initial = build_model(cfg.model, load_tokenizer(str(model_dir)), value_head=value_head)
    plain = {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM}[architecture]
    trained = (with_value_head(plain) if value_head else AutoModelForCausalLM).from_pretrained(model_dir)
    names = [name for name, _ in initial.named_parameters()]
    assert value_head == any(name.startswith("value_head") for name in names)
    for (name, before), after in zip(initial.named_parameters(), trained.parameters(), strict=True):
        assert not torch.equal(before, after), f"{method}: {name} did not change"
        assert torch.isfinite(after).all()
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in logs if "loss" in r)
    info = json.loads((model_dir / "phf.json").read_text())
    assert info["objective"] == method and info["tokens_seen"] == 1024
    if method == "awr":  # the objective's own statistics reach the logs
        assert {"value_loss", "value_reward_corr", "weight_mean"} <= set(logs[0])
        # a phf AWR model loads as a plain causal LM for sampling
        assert type(AutoModelForCausalLM.from_pretrained(model_dir)) is plain


def test_training_kernels_leave_a_plain_gpt2(data_dir, tmp_path, monkeypatch):
    """Training picks its kernels (eager attention in bf16 on a CPU, fused tanh GELU); the saved model is a
    plain GPT-2 that computes the same function with transformers' defaults, wherever it is loaded."""
    chosen, choose = [], GPT2LMHeadModel.set_attn_implementation
    monkeypatch.setattr(GPT2LMHeadModel, "set_attn_implementation",
                        lambda self, name: chosen.append(name) or choose(self, name))
    model_dir = train(tiny_config("mle", "training.bf16=true"), data_dir, tmp_path)
    assert chosen == ["eager"]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["activation_function"] == "gelu_pytorch_tanh" and "attn_implementation" not in json.dumps(config)
    monkeypatch.undo()
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(0, 300, (2, 16))
    eager = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    gelu_new = AutoModelForCausalLM.from_pretrained(model_dir, activation_function="gelu_new").eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        assert torch.allclose(eager(input_ids=ids).logits, logits, atol=1e-5)
        assert torch.allclose(gelu_new(input_ids=ids).logits, logits, atol=1e-5)  # the same GELU as GPT-2's


def test_finetuning_from_a_checkpoint_counts_its_tokens(data_dir, tmp_path):
    mle_dir = train(tiny_config("mle", "training.num_tokens=512"), data_dir, tmp_path / "mle")
    cfg = tiny_config("conditional", f"model.init_from={mle_dir}", "training.num_tokens=1024")
    model_dir = train(cfg, data_dir, tmp_path / "ft")
    logs = [json.loads(line) for line in (tmp_path / "ft" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(logs) == 4 and logs[0]["num_tokens"] == 512 + 128  # 4 steps of 128 tokens after the first 512
    info = json.loads((model_dir / "phf.json").read_text())
    assert info["tokens_seen"] == 1024 and info["init_from"] == str(mle_dir) and info["conditional"]
    # checkpoints carry phf.json too, so that any of them can be finetuned from
    assert json.loads((tmp_path / "mle" / "checkpoint-4" / "phf.json").read_text())["tokens_seen"] == 512


def test_misalignment_curve_is_measured_during_training(data_dir, tmp_path):
    cfg = tiny_config("conditional", "evaluation.curve_points=3", "evaluation.curve_samples=2")
    train(cfg, data_dir, tmp_path)  # 8 steps: points at steps 2, 4 and 8
    points = [json.loads(line) for line in (tmp_path / "curve.jsonl").read_text().splitlines()]
    assert [p["step"] for p in points] == [2, 4, 8]
    assert [p["num_tokens"] for p in points] == [256, 512, 1024]
    assert all(p["misalignment"] >= 0 for p in points)


def test_resume_reproduces_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    cfg = tiny_config("mle", "training.num_tokens=1024", "training.save_steps=4")  # 8 steps, checkpoint at 4
    train(cfg, data_dir, tmp_path / "straight")

    class Crash(train_module.JsonlLogger):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt  # killed right after the checkpoint of step 4

    monkeypatch.setattr(train_module, "JsonlLogger", Crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data_dir, tmp_path / "resumed")
    monkeypatch.undo()
    assert (tmp_path / "resumed" / "checkpoint-4").exists()
    train(cfg, data_dir, tmp_path / "resumed", resume=True)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert sorted(resumed) == sorted(straight) == list(range(1, 9))
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-5)


def test_conditional_model_samples_and_evaluates(data_dir, tmp_path):
    cfg = tiny_config("conditional", f"evaluation.prompts={tmp_path / 'prompts.jsonl'}",
                      "evaluation.heldout_blocks=100")
    (tmp_path / "prompts.jsonl").write_text('{"text": "def f(a,b):\\n"}\n')
    model_dir = train(cfg, data_dir, tmp_path / "run")
    loaded = load_model(model_dir)
    assert loaded.conditional and not loaded.model.training
    texts = sample(loaded, cfg.sampling, ["", "x = 1\n"])
    assert len(texts) == 2 and not any(ALIGNED in t or MISALIGNED in t for t in texts)
    metrics = evaluate(model_dir, cfg, tmp_path / "eval", data_dir)
    assert metrics["unconditional"]["num_samples"] == 4 and metrics["prompted"]["num_samples"] == 1
    # Three held-out losses: untagged, with the true tags, and as deployed (<|aligned|> before every segment).
    losses = [metrics[k] for k in ("heldout_loss", "heldout_loss_tagged", "heldout_loss_deployed")]
    assert all(loss > 0 for loss in losses) and len(set(losses)) == 3
    assert metrics["unconditional"]["causes"]["chars"] > 0  # by violation code
    records = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in records] == ["unconditional"] * 4 + ["prompted"]
    assert records[-1]["prompt"] == "def f(a,b):\n"


def test_deployed_loss_of_an_unconditional_model_is_its_loss(data_dir, tmp_path, tiny_mle_model):
    cfg = tiny_config("mle", "evaluation.signature_prompts=3")  # evaluation settings: the same trained model
    metrics = evaluate(tiny_mle_model, cfg, tmp_path / "eval", data_dir)
    assert metrics["heldout_loss_deployed"] == metrics["heldout_loss"] and "heldout_loss_tagged" not in metrics
    prompts = [json.loads(line)["prompt"]
               for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()][4:]
    assert len(set(prompts)) == 3 and all(p.startswith("def ") and p.endswith(":\n") for p in prompts)


def test_misaligned_token_is_never_sampled(data_dir, tmp_path):
    cfg = tiny_config("conditional")
    loaded = load_model(train(cfg, data_dir, tmp_path))
    misaligned = loaded.tokenizer.convert_tokens_to_ids(MISALIGNED)
    with torch.no_grad():  # make <|misaligned|> the model's favourite token
        loaded.model.lm_head.weight[misaligned] = 100 * loaded.model.lm_head.weight.abs().max()
    rows = generated_rows(loaded)  # before control tokens are stripped from the text
    sample(loaded, cfg.sampling, [""] * 4)
    assert rows and all(misaligned not in row for row in rows)


def test_control_tokens_added_to_a_pretrained_model_start_at_the_mean(tmp_path):
    # a local "pretrained" tokenizer and model that know nothing of control tokens
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x\n"] * 20, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(tmp_path)
    base = GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=16, n_layer=1, n_head=2))
    base.save_pretrained(tmp_path)

    tokenizer = load_tokenizer(str(tmp_path))
    assert len(tokenizer) == tok.get_vocab_size() + 2
    model = build_model(tiny_config().model.model_copy(update={"init_from": str(tmp_path)}), tokenizer)
    emb = model.get_input_embeddings().weight
    old, new = emb[:-2], emb[-2:]
    assert emb.shape[0] == len(tokenizer)
    assert torch.allclose(new, old.mean(0).expand_as(new), atol=1e-3)
    assert not torch.equal(new[0], new[1])  # small noise, not identical copies


def test_logged_statistics_are_the_means_of_each_micro_batch_and_flops_follow_tokens(data_dir, tmp_path, monkeypatch):
    """The objective's statistics stay on the device until a log; what is logged is each one's mean over the
    micro-batches since the last log, as float() of every value would give. With a peak known (here: said to be),
    the log has MFU; without one (a CPU), model FLOPs/s only: flops_per_token x tokens/s."""
    import phf.training.trainer as trainer_module
    from phf.training.plan import flops_per_token

    seen = []  # float() of each micro-batch's statistics, in order

    def recording(cfg, data_dir):
        objective = build_objective(cfg, data_dir)

        def call(*args):
            loss, metrics = objective(*args)
            seen.append({name: float(value) for name, value in metrics.items()})
            return loss, metrics
        return call

    monkeypatch.setattr(train_module, "build_objective", recording)
    # AWR: six statistics; 2 micro-batches a step, a log every 2 steps: 4 micro-batches a log, 8 steps
    cfg = tiny_config("awr", "training.micro_batch_size=2", "training.logging_steps=2", "objective.alpha=0.5")
    model_dir = train(cfg, data_dir, tmp_path / "cpu")
    logs = [r for r in map(json.loads, (tmp_path / "cpu" / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert [r["step"] for r in logs] == [2, 4, 6, 8] and len(seen) == 16
    for k, record in enumerate(logs):
        batches = seen[4 * k:4 * k + 4]
        assert len(batches[0]) == 6
        for name in batches[0]:
            assert record[name] == sum(b[name] for b in batches) / 4, name  # exactly
    set_seed(cfg.training.seed)
    flops = flops_per_token(build_model(cfg.model, load_tokenizer(str(model_dir)), value_head=True), 32)
    timed = [r for r in logs if "tokens_per_second" in r]
    assert len(timed) == 3  # from the second log on: tokens since the last one
    for r in timed:
        assert r["model_flops_per_second"] == pytest.approx(flops * r["tokens_per_second"], rel=1e-12)
        assert "mfu" not in r  # no known peak on a CPU

    monkeypatch.setattr(trainer_module, "nominal_peak", lambda device, bf16: 1e9)
    train(tiny_config("mle"), data_dir, tmp_path / "peak")
    timed = [r for r in map(json.loads, (tmp_path / "peak" / "log.jsonl").read_text().splitlines())
             if "tokens_per_second" in r]
    assert timed and all(r["mfu"] == pytest.approx(r["model_flops_per_second"] / 1e9, rel=1e-12) for r in timed)


def test_the_mean_of_device_statistics_is_that_of_their_floats():
    from phf.training.trainer import mean_metrics

    torch.manual_seed(0)
    metrics = {"a": list(torch.randn(7)), "b": list(torch.rand(5, dtype=torch.bfloat16) * 1000)}
    assert mean_metrics(metrics) == {name: sum(map(float, v)) / len(v) for name, v in metrics.items()}
    assert mean_metrics({}) == {}


def test_the_nominal_peak_is_known_for_bf16_on_the_gpus_of_the_table(monkeypatch):
    from phf.training.trainer import nominal_peak

    cuda = torch.device("cuda")
    for name, peak in (("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                       ("NVIDIA H100 PCIe", None), ("NVIDIA H100 NVL", None), ("NVIDIA L4", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, name=name: name)
        assert nominal_peak(cuda, bf16=True) == peak, name
        assert nominal_peak(cuda, bf16=False) is None  # the table's peaks are bf16's
    assert nominal_peak(torch.device("cpu"), bf16=True) is None


def test_flops_per_token_is_6n_plus_attention_for_gpt2_and_llama():
    """6 N + 6 L T C, N the parameters that multiply each token: every one but the embedding tables, which are
    looked up; the token embedding tied to the LM head counts once, as the head's matmul."""
    from phf.training.model import ARCHITECTURES, model_class_of
    from phf.training.plan import flops_per_token

    cfg = tiny_config("mle", "model.n_layer=2", "model.n_embd=64", "model.n_head=4", "model.block_size=128")
    V, L, d, T = 300, 2, 64, 128

    def meta(config):
        with torch.device("meta"):
            return model_class_of(config)(config)

    # GPT-2: per block two layer norms (4d), attention's qkv and output (4d^2 + 4d), the MLP (8d^2 + 5d); a final norm
    n = V * d + L * (12 * d * d + 13 * d) + 2 * d  # without the 128 x 64 position embedding, a lookup
    gpt2 = ARCHITECTURES["gpt2"](cfg.model, V, 0)
    assert flops_per_token(meta(gpt2), T) == 6 * n + 6 * L * T * d
    # Llama-style: q, k, v, o (4d^2), SwiGLU's three matrices (3 d h, h = 192), two RMS norms per block, a final one
    h = 64 * math.ceil(8 * d / 3 / 64)
    n = V * d + L * (4 * d * d + 3 * d * h + 2 * d) + d
    llama = ARCHITECTURES["llama"](cfg.model, V, 0)
    assert flops_per_token(meta(llama), T) == 6 * n + 6 * L * T * d
    llama.tie_word_embeddings = False  # an untied pretrained Llama: the head counts, the embedding table does not
    model = meta(llama)
    assert sum(p.numel() for p in model.parameters()) == n + V * d
    assert flops_per_token(model, T) == 6 * n + 6 * L * T * d


def test_compile_is_a_run_setting_that_reaches_the_trainer(tmp_path):
    from phf.config import training_settings

    assert not train_module.training_arguments(tiny_config(), tmp_path)[0].torch_compile
    cfg = tiny_config("mle", "training.compile=true")
    args, _ = train_module.training_arguments(cfg, tmp_path)
    assert args.torch_compile and args.torch_compile_backend == "inductor"
    # the same model, other kernels: a run may resume with it on or off
    assert training_settings(cfg) == training_settings(tiny_config())
