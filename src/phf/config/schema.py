"""The config's schema: one pydantic class per section, each field with its default and help text, and the
rules across fields as validators. Reading YAML, recipes and overrides into it: `phf.config.load`."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from phf.objectives import METHODS
from phf.scorers import SCORERS
from phf.settings import RUN_ONLY, Section


class DataConfig(Section):
    corpus: str | None = Field("stdlib", description="A file or folder (.jsonl, .json, .csv, .parquet "
                               "records; any other file is one document), a Hugging Face dataset name "
                               "(streamed), 'stdlib': the interpreter's standard library .py files (the "
                               "embedded PEP8 corpus), or a corpus phf ships: 'builtin:toxicity', 'builtin:pii' "
                               "(offline text tasks, phf.corpora). None: not set.")
    text_field: str = Field("text", description="Field or column of a record holding its text. Records "
                            "with 'texts' and 'scores' (the paper's format) are taken as already scored.")
    suffixes: list[str] = Field([".py"], description="Files of a corpus folder "
                                "that are read (a single file is always read).")
    on_error: Literal["skip", "fail"] = Field("skip", description="A malformed record (bad JSON, "
                                              "no text field, not UTF-8): skip it and name it in "
                                              "scored/report.json, or stop with its file and line.")
    hub_split: str = Field("train", description="Split of a Hugging Face dataset corpus.")
    hub_subset: str | None = Field(None, description="Subset (config name) of a Hugging Face dataset corpus.")
    heldout_fraction: float = Field(0.05, gt=0, lt=1, description="Share of documents "
                                    "held out, chosen by a hash of their id.")
    max_documents: int | None = Field(None, gt=0, description="Use at most this many documents (for quick runs).")


class ScorerConfig(Section):
    name: str = Field("pep8", description="Misalignment scorer: "
                      + "; ".join(f"{k} = {spec.description}" for k, spec in SCORERS.items())
                      + "; or module:function, a callable from a list of texts to a list of floats (higher = worse).")
    model: str | None = Field(None, description="detoxify: original, unbiased or a "
                              "checkpoint file; classifier: a model folder or hub name.")
    label: str | None = Field(None, description="classifier: the label whose probability is the "
                              "score (default: the label named like 'toxic', else the last).")
    segmenter: Literal["sentences", "lines"] = Field("sentences", description="Segments of every scorer but pep8 "
                                                     "(which scores lines): spaCy's rule-based sentences, or lines.")
    batch_size: int = Field(256, gt=0, description="Segments scored per call of the scorer.",
                            json_schema_extra=RUN_ONLY)
    num_workers: int = Field(0, ge=0, description="Scoring processes; 0 = one per GPU for a scorer on GPUs "
                             "(scorer.device), else one per CPU core.", json_schema_extra=RUN_ONLY)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="Where detoxify and classifier "
                        "score: auto = the GPUs when there are, else the CPU; cpu; cuda (every GPU); cuda:N (one).",
                        json_schema_extra=RUN_ONLY)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Precision of detoxify and classifier: auto = bfloat16 on a GPU that has it, else "
        "float16; float32 on the CPU.")
    shard_size: int = Field(64, gt=0, description="Documents per output shard; "
                            "a killed run resumes at shard granularity.")
    attributes: list[str] = Field([], description="More attributes scored on the same segments as scorer.name, one "
                                  "score each per segment (built-in names or module:function, with their default "
                                  "settings). Conditional training tags every attribute "
                                  "(objective.attribute_thresholds); evaluation reports each attribute's misalignment.")

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        if v not in SCORERS and ":" not in v:
            raise ValueError(f"unknown scorer {v!r}; built-in: {', '.join(SCORERS)}, or module:function")
        return v

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, v):
        for name in v:
            cls._known(name)
        if len(set(v)) != len(v):
            raise ValueError(f"an attribute is listed twice: {v}")
        return v


class TokenizerConfig(Section):
    pretrained: str | None = Field(None, description="Tokenizer name or path; "
                                   "None = train a byte-level BPE on the training split.")
    vocab_size: int = Field(8192, ge=300, description="Vocabulary size of "
                            "a trained tokenizer, special tokens included.")
    train_chars: int = Field(20_000_000, gt=0, description="Characters of the training split the BPE is trained on.")


class ModelConfig(Section):
    init_from: str | None = Field(None, description="Start from this model or checkpoint (HF name or path) instead "
                                  "of a fresh one (finetuning): its own architecture and size then apply, and "
                                  "training.num_tokens counts the tokens it was trained on.")
    architecture: Literal["gpt2", "llama"] = Field("gpt2", description="A fresh model's architecture: gpt2 (the "
                                                   "paper's: learned positions, GELU, LayerNorm) or llama (rotary "
                                                   "positions, SwiGLU, RMSNorm, no biases; tied embeddings). "
                                                   "Either is saved as a plain Hugging Face model.")
    n_layer: int = Field(4, gt=0, description="Transformer blocks of a fresh model.")
    n_head: int = Field(4, gt=0, description="Attention heads per block.")
    n_embd: int = Field(256, gt=0, description="Width of the residual stream; a multiple of n_head.")
    block_size: int = Field(128, ge=8, description="Tokens per packed training block (context length).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on embeddings, attention and residuals "
                           "(llama: on attention only, as transformers' Llama has no other).")


# One settings class per objective (docs/method.md, Objectives), beside it in phf.objectives, told apart by
# `name`: a setting another objective has (objective.beta on a conditional run) is an error naming the objective.
OBJECTIVE_CONFIGS = {name: method.settings for name, method in METHODS.items()}
# A Union of a computed tuple has no `X | Y` spelling: UP007's fix would drop the Union and break the field.
ObjectiveConfig = Annotated[Union[tuple(OBJECTIVE_CONFIGS.values())], Field(discriminator="name")]  # noqa: UP007


class TrainingConfig(Section):
    num_tokens: int = Field(2_000_000, gt=0, description="Token budget: training stops after this many tokens.")
    batch_size: int = Field(32, gt=0, description="Effective batch in sequences "
                            "(micro_batch_size x accumulation x processes).")
    micro_batch_size: int = Field(32, gt=0, description="Sequences per forward pass on one process, at most: "
                                  "lowered to batch_size / processes when that is smaller (docs/distributed.md).")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (paper: 0.1).")
    warmup_fraction: float = Field(0.01, ge=0, lt=1, description="Share of steps with linear warm-up (paper: 1%).")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field("cosine",
                                                                              description="Decay after warm-up.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    bf16: Literal["auto"] | bool = Field("auto", description="bf16 autocast; "
                                         "auto = on where the device computes bf16 natively.")
    num_threads: int = Field(0, ge=0, description="torch CPU threads; 0 = torch's default.", json_schema_extra=RUN_ONLY)
    compile: bool = Field(False, description="torch.compile the model (transformers' torch_compile): same "
                          "model, other kernels; what it gains: benchmarks/README.md.", json_schema_extra=RUN_ONLY)
    save_steps: int = Field(200, gt=0, description="Save a resumable checkpoint every N optimiser steps.",
                            json_schema_extra=RUN_ONLY)
    save_total_limit: int = Field(2, gt=0, description="Keep at most this many checkpoints.",
                                  json_schema_extra=RUN_ONLY)
    logging_steps: int = Field(10, gt=0, description="Log every N steps (the run's log.jsonl, and report_to).",
                               json_schema_extra=RUN_ONLY)
    report_to: list[str] = Field([], description="Trackers for transformers' Trainer beside the run's log.jsonl: "
                                 "tensorboard (pip install 'phf[tensorboard]'), wandb, ...",
                                 json_schema_extra=RUN_ONLY)
    seed: int = Field(0, description="Seed for initialisation, data order and control-token dropping.")
    snapshot_at: list[float] = Field([], description="Also save the model at these fractions "
                                     "of the steps, as snapshot-<fraction>/ (starts for "
                                     "finetuning comparisons).", json_schema_extra=RUN_ONLY)

    @field_validator("snapshot_at")
    @classmethod
    def _fractions(cls, v):
        if any(not 0 < f < 1 for f in v):
            raise ValueError(f"fractions must lie strictly between 0 and 1, got {v}")
        return v


class SamplingConfig(Section):
    max_new_tokens: int = Field(128, gt=0, description="Tokens generated per sample (paper: 128 for "
                                "text; 640 for PEP8, which needs a context of more than 640 positions).")
    min_new_tokens: int = Field(10, ge=0, description="Tokens generated before EOS may end a sample "
                                "(paper: min_length 10), so no sample is empty; at most max_new_tokens.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature (paper: 0.7).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass (paper: 0.9).")
    batch_size: int = Field(64, gt=0, description="Samples generated per forward pass.")
    seed: int = Field(0, description="Seed of the sampler.")
    tags: Literal["aligned", "none"] = Field("aligned", description="Conditional models: start every segment "
                                             "from the aligned control tokens, or from none, with every "
                                             "control token suppressed: what the model writes untagged (e.g. "
                                             "after a tag cooldown, objective.cooldown_fraction).")
    guidance: float = Field(0.0, ge=0, description="Conditional models: classifier-free guidance weight w, "
                            "next-token log-probabilities l = l_aligned + w (l_aligned - l_misaligned), where "
                            "l_misaligned conditions on the worst level of every attribute; 0 = plain conditional "
                            "sampling (transformers' guidance_scale = 1 + w). Costs a second forward pass per token.")


class EvaluationConfig(Section):
    num_samples: int = Field(256, gt=0, description="Unconditional samples scored.")
    prompts: str | None = Field(None, description="Prompts of the prompted scenario and the red team's seeds: "
                                "a .jsonl file ({'text': ...} per line; a relative path is relative to the YAML "
                                "that set it), or a dataset: a Hugging Face hub name (users online) or a local "
                                "folder of data files, read with prompt_field, prompt_filter and prompt_split "
                                "(RealToxicityPrompts' challenging subset: allenai/real-toxicity-prompts, "
                                "prompt.text, challenging).")
    prompt_field: str = Field("text", description="A prompts dataset's field holding the prompt; dots reach "
                              "into nested records (RealToxicityPrompts: prompt.text).")
    prompt_filter: str | None = Field(None, description="A prompts dataset's field that must be true for a record "
                                      "to be used (RealToxicityPrompts: challenging). None = every record.")
    prompt_split: str = Field("train", description="The split of a prompts dataset that is read.")
    signature_prompts: int = Field(0, ge=0, description="Code tasks: the prompted scenario's prompts are "
                                   "this many function signatures drawn from the held-out split (never "
                                   "trained on; the paper used CodeSearchNet's) instead of "
                                   "evaluation.prompts, which still seeds red teaming. 0 = the prompts file.")
    samples_per_prompt: int = Field(4, gt=0, description="Continuations drawn for each prompt.")
    score_prompt: bool = Field(False, description="Prompted samples and red-team continuations are scored "
                               "together with their prompt (true: the paper's PEP8, where a signature and its "
                               "body are the code judged), or alone (false: the paper's toxicity and PII, "
                               "RealToxicityPrompts' convention; a prompt's own misalignment is not the model's).")
    hit_threshold: float = Field(0.0, ge=0, description="A sample whose score exceeds this counts as a hit.")
    expected_max_k: int = Field(25, gt=0, description="Group size of the expected maximum (consecutive samples).")
    heldout_blocks: int | None = Field(400, gt=0, description="Held-out blocks the loss is measured on; None = all.")
    curve_points: int = Field(0, ge=0, description="Misalignment measured this many "
                              "times during training, at log-spaced steps (0 = never).")
    curve_samples: int = Field(64, gt=0, description="Unconditional samples per "
                               "point of the misalignment-against-tokens curve.")
    aligned_threshold: float = Field(0.0, ge=0, description="Held-out loss on aligned "
                                     "segments only counts segments scored at most this.")
    kl_reference: str | None = Field(None, description="Capability as KL(reference || model), estimated on samples "
                                     "of this reference LM (paper: GPT-3): a local model folder (e.g. an MLE model "
                                     "trained longer), a hub name, or openai:MODEL@URL. None = not measured.")
    kl_samples: int = Field(256, gt=0, description="Reference samples the KL is "
                            "estimated on (drawn at temperature 1, top-p 1, and cached).")
    kl_max_new_tokens: int | None = Field(None, gt=0, description="Tokens per reference sample; "
                                          "None = sampling.max_new_tokens.")
    downstream: list[str] = Field([], description="Downstream capability (the paper's): humaneval (code: pass@k of the "
                                  "164 problems, executed in separate processes), a GLUE task (cola, sst2, mrpc, qqp, "
                                  "stsb, mnli, qnli, rte, wnli: finetuned with a new head, scored on validation), or "
                                  "any lm-evaluation-harness task, zero-shot (lambada = lambada_openai, the paper's "
                                  "for text; phf_toxicity_profanity, phf_toxicity_detoxify and their _challenging "
                                  "variants: RealToxicityPrompts judged by phf's scorers). Conditional models are "
                                  "evaluated as deployed, after their aligned tags.")
    downstream_files: dict[str, str] = Field({}, description="Local data of downstream tasks, instead of the hub: "
                                             "humaneval -> a problems JSONL; a GLUE task -> a folder with train and "
                                             "validation .jsonl/.csv/.tsv in GLUE's columns; an lm-eval task -> its "
                                             "test split as JSONL in the task's fields (LAMBADA: {'text': ...}; "
                                             "builtin:pii-lastword and builtin:toxicity-lastword are last-word sets "
                                             "from the built-in corpora's held-out splits).")
    humaneval_samples: int = Field(10, gt=0, description="HumanEval: completions per "
                                   "problem (n of the unbiased pass@k estimator).")
    humaneval_k: list[int] = Field([1, 10], description="HumanEval: the k of pass@k (each at most humaneval_samples).")
    zero_shot_limit: int | None = Field(None, gt=0, description="lm-eval tasks: score at "
                                        "most this many examples of each (None = all).")
    glue_epochs: float = Field(3.0, gt=0, description="GLUE: finetuning epochs per task.")
    glue_learning_rate: float = Field(1e-4, gt=0, description="GLUE: peak learning rate of the finetuning.")
    glue_batch_size: int = Field(16, gt=0, description="GLUE: finetuning batch size.")
    glue_train_examples: int | None = Field(None, gt=0, description="GLUE: finetune on at most "
                                            "this many training examples per task, drawn with "
                                            "training.seed (None = all; a CPU-sized subset).")

    @field_validator("downstream_files")
    @classmethod
    def _known_builtin_files(cls, files: dict[str, str]) -> dict[str, str]:
        """`builtin:NAME` is a file phf ships (builtin:pii-lastword, ...): kept by name, so that a saved config means
        the same wherever phf is installed; an unknown name is refused here."""
        from phf.corpora import builtin_path

        for path in files.values():
            builtin_path(path)
        return files

    @model_validator(mode="after")
    def _downstream(self):
        if unused := set(self.downstream_files) - set(self.downstream):
            raise ValueError(f"evaluation.downstream_files names {sorted(unused)}, which evaluation.downstream "
                             "does not run")
        if too_big := [k for k in self.humaneval_k if k > self.humaneval_samples]:
            raise ValueError(f"evaluation.humaneval_k {too_big} exceeds evaluation.humaneval_samples "
                             f"({self.humaneval_samples})")
        return self


class RedTeamConfig(Section):
    rounds: int = Field(10, gt=0, description="Rounds of red teaming (paper: 10).")
    new_prompts_per_round: int = Field(16, gt=0, description="Queries to the red LM per round, one new "
                                       "prompt each (before unparsable and duplicate ones are dropped).")
    continuations_per_prompt: int = Field(4, gt=0, description="Continuations the target writes for each prompt; "
                                          "the prompt's score is their mean (the paper's reference code: 512 on "
                                          "a GPU; 4 keeps 10 rounds of a CPU-sized model to a few minutes).")
    few_shot: int = Field(4, gt=0, description="Pool prompts shown to the red LM per query (paper: 4).")
    pool_temperature: float | None = Field(None, gt=0, description="T of the draw of few-shot examples, p ∝ "
                                           "exp(mean score / T). None = the standard deviation of the pool's "
                                           "scores, recomputed each round (fits any scorer's scale; the "
                                           "paper's reference code used 0.1 for toxicity probabilities).")
    red_lm: str | None = Field(None, description="The LM that writes prompts: a model folder, "
                               "a hub name, or openai:MODEL@URL (an OpenAI-compatible server; "
                               "the paper used InstructGPT). None = the target itself.")
    red_max_new_tokens: int = Field(48, gt=0, description="Tokens the red LM writes "
                                    "per query (one prompt is parsed from them).")
    red_temperature: float = Field(1.0, gt=0, description="Sampling temperature "
                                   "of the red LM (paper's reference code: 1).")
    red_top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling "
                             "mass of the red LM (paper's reference code: 1).")
    template: str | None = Field(None, description="Text file of the red LM's instruction, ending in "
                                 "{numbered_list} or {python_signatures} where the examples go (a "
                                 "relative path is relative to the YAML that set it, or to the working "
                                 "directory when set on the command line). None = redteam.txt beside the "
                                 "task's evaluation.prompts file.")
    report_top: int = Field(10, gt=0, description="Best prompts listed in redteam.json.")
    seed: int = Field(0, description="Seed of the few-shot draws and of both LMs' sampling.")


class Config(Section):
    data: DataConfig = DataConfig()
    scorer: ScorerConfig = ScorerConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    objective: ObjectiveConfig = METHODS["mle"].settings()
    training: TrainingConfig = TrainingConfig()
    sampling: SamplingConfig = SamplingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    redteam: RedTeamConfig = RedTeamConfig()

    @model_validator(mode="before")
    @classmethod
    def _mle_by_default(cls, raw):
        if isinstance(raw, dict) and isinstance(raw.get("objective"), dict) and "name" not in raw["objective"]:
            raw = {**raw, "objective": {**raw["objective"], "name": "mle"}}
        return raw

    @model_validator(mode="after")
    def _guidance_has_aligned_tags(self):
        if self.sampling.guidance and self.sampling.tags == "none":
            raise ValueError("sampling.guidance contrasts the aligned tags with the worst: it needs "
                             "sampling.tags=aligned")
        return self

    @model_validator(mode="after")
    def _attributes(self):
        tagged = METHODS[self.objective.name].tagged_attributes(self.objective)
        if unscored := set(tagged) - set(self.scorer.attributes):
            raise ValueError(f"objective.attribute_thresholds names {sorted(unscored)}, which scorer.attributes "
                             f"({self.scorer.attributes}) does not score")
        return self


def training_settings(cfg: Config) -> dict:
    """What decides the trained model: every section but evaluation, sampling and red teaming, less the fields
    marked RUN_ONLY, as dotted keys."""
    return {f"{name}.{key}": value for name in ("data", "scorer", "tokenizer", "model", "objective", "training")
            for key, value in getattr(cfg, name).deciding().items()}


def field_help(key: str, default: str | None = None) -> str:
    """The help text of a config key (section.key), for a command-line flag that sets it; `default`: where the
    default comes from when the schema's is not it (a task's recipe sets its own)."""
    section, name = key.split(".")
    field = Config.model_fields[section].annotation.model_fields[name]
    return f"{field.description} Sets {key} (default: {default or field.default})."
