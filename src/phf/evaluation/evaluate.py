"""`phf evaluate`: sample, score the samples with the task's scorer and attributes, summarise; held-out loss."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from phf.config import Config
from phf.data.control import control_ids
from phf.data.prepare import prepare_packed
from phf.data.scored import scored_info
from phf.errors import PHFError
from phf.evaluation.causes import cause_rates
from phf.evaluation.diversity import diversity
from phf.evaluation.heldout import heldout_loss
from phf.evaluation.kl import kl_from_reference
from phf.evaluation.metrics import judged, misalignment
from phf.evaluation.prompts import heldout_signatures, task_prompts
from phf.files import BUILT_FROM, owned, staged, write_built_from
from phf.lm import LocalLM, load_lm
from phf.model_card import write_card
from phf.model_folder import ModelInfo, model_fingerprint
from phf.sampling.generate import LoadedModel, load_model, sample
from phf.scorers import get_attribute_scorers, get_scorer, segmenter_of

# The files of one evaluation (with its downstream tasks'): written together, replacing an earlier evaluation's.
OUTPUTS = ("metrics.json", "samples.jsonl", "samples.csv", "config.yaml", "humaneval.jsonl", BUILT_FROM)


def capability(loaded, cfg: Config, data_dir: Path) -> dict:
    """Held-out loss (nats per token, control tokens not counted) on the held-out text as it is (no control
    tokens: the same tokens for every objective) and on its aligned segments only; for conditional models also
    with the true tags, and as deployed: the aligned tags before every segment, as the model is sampled.
    `heldout_loss_deployed` is every model's loss as it is sampled (the plain one for unconditional models and
    for sampling.tags=none): the capability the report plots against misalignment. The text is tokenized by the
    model's own tokenizer, whatever data folder it comes from; one scored with another scorer is refused."""
    scored_with = scored_info(data_dir)["scorer"]["name"]
    if scored_with != cfg.scorer.name:
        raise PHFError(f"{data_dir} was scored with {scored_with!r}, the model's config uses {cfg.scorer.name!r}: "
                       "its held-out scores and tags would mean something else; use a data folder of the task")
    tokenizer = loaded.tokenizer
    packed = prepare_packed(cfg, data_dir, tokenizer,
                            streams=("heldout", "heldout_tagged", "heldout_deployed"))
    ev, control = cfg.evaluation, control_ids(tokenizer, cfg)

    def loss(name: str) -> dict:
        return heldout_loss(loaded.model, packed[name], cfg.model.block_size, control, ev.aligned_threshold,
                            max_blocks=ev.heldout_blocks)

    plain = loss("heldout")
    out = {"heldout_loss": plain["loss"], "heldout_loss_aligned": plain["loss_aligned"],
           "heldout_tokens": plain["tokens"], "heldout_loss_deployed": plain["loss"]}
    if "heldout_tagged" in packed:
        out["heldout_loss_tagged"] = loss("heldout_tagged")["loss"]
        if cfg.sampling.tags == "aligned":
            out["heldout_loss_deployed"] = loss("heldout_deployed")["loss"]
    return out


def kl_capability(loaded: LoadedModel, model_dir: Path, cfg: Config, cache_dir: Path) -> dict:
    """KL(reference || model) per character, sample and token (evaluation/kl.py) of the model `loaded` from
    `model_dir`; a conditional model is scored after `<|aligned|>`, as in the paper (guided, or with no tag, as
    `sampling` says), and, sampled with its aligned tags and unguided, also as deployed: its tags before every
    segment of the reference's samples."""
    ev = cfg.evaluation
    model = LocalLM(model_dir, guidance=cfg.sampling.guidance, tags=cfg.sampling.tags, loaded=loaded)
    segmenter = segmenter_of(cfg.scorer)

    def deployed(texts: list[str]):
        return model.deployed_log_likelihood(segmenter.split_all(texts))

    as_deployed = model.loaded.conditional and cfg.sampling.tags == "aligned" and not cfg.sampling.guidance
    return kl_from_reference(model, load_lm(ev.kl_reference), ev.kl_samples, cache_dir,
                             ev.kl_max_new_tokens or cfg.sampling.max_new_tokens,
                             deployed=deployed if as_deployed else None)


def evaluate(model_dir: Path, cfg: Config, out_dir: Path, data_dir: Path | None = None,
             kl_cache_dir: Path | None = None) -> dict:
    """Write `metrics.json`, the scored samples (`samples.jsonl`, `samples.csv`) and the config evaluated with
    (`config.yaml`) to `out_dir`, replacing an earlier evaluation's files together, only once all is done; return
    the metrics.
    With `evaluation.kl_reference`, also KL from that reference; its samples are cached in `kl_cache_dir` (default:
    `data_dir/kl-cache`, shared by every model evaluated on the same data, else `out_dir/kl-cache`)."""
    with owned(out_dir) as out_dir, staged(out_dir, OUTPUTS) as stage:
        metrics, records, attributes = _evaluate(model_dir, cfg, stage, data_dir, kl_cache_dir or
                                                 Path(data_dir or out_dir) / "kl-cache")
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=1))
        (stage / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        _write_csv(stage / "samples.csv", records, attributes)
        (stage / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))  # for people
        write_built_from(stage, evaluation_inputs(cfg, model_dir, data_dir))  # for `phf experiment`'s reuse
    info = ModelInfo.read(model_dir)
    if info.objective and out_dir.resolve() == (Path(model_dir).parent / "eval").resolve():
        write_card(model_dir, info, cfg.sampling, metrics)  # the run's own evaluation: the card shows it
    return metrics


def evaluation_inputs(cfg: Config, model_dir: Path, data_dir: Path | None) -> dict:
    """What an evaluation is made from: its settings, the scorer's, and the model, data and KL reference as they
    are now (their fingerprints). An evaluation is reused only while all of these are unchanged."""
    return {"evaluation": cfg.evaluation.model_dump(), "sampling": cfg.sampling.model_dump(),
            "scorer": cfg.scorer.deciding(),
            "model": model_fingerprint(model_dir), "data": scored_info(data_dir) if data_dir is not None else None,
            "kl_reference": model_fingerprint(cfg.evaluation.kl_reference) if cfg.evaluation.kl_reference else None}


def _write_csv(path: Path, records: list[dict], attributes: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:  # one more column per attribute: <name>_score
        writer = csv.DictWriter(f, ["scenario", "prompt", "text", "score", *(f"{name}_score" for name in attributes)])
        writer.writeheader()
        writer.writerows({**{k: v for k, v in r.items() if k != "attribute_scores"},
                          **{f"{name}_score": s for name, s in r.get("attribute_scores", {}).items()}} for r in records)


def _evaluate(model_dir: Path, cfg: Config, out_dir: Path, data_dir: Path | None,
              kl_cache_dir: Path) -> tuple[dict, list[dict], list[str]]:
    """The metrics, the scored samples and the attributes' names; files of downstream tasks go to `out_dir`."""
    ev = cfg.evaluation
    if ev.downstream:
        from phf.evaluation.downstream import check_downstream

        check_downstream(cfg)
    loaded = load_model(model_dir)
    scorer = get_scorer(cfg.scorer)
    attribute_scorers = get_attribute_scorers(cfg.scorer)
    scenarios = {"unconditional": [""] * ev.num_samples}
    prompts, prompt_source = [], None
    if ev.signature_prompts and data_dir is not None:
        prompts = heldout_signatures(data_dir, ev.signature_prompts, cfg.sampling.seed)
        prompt_source = f"{ev.signature_prompts} function signatures of the held-out split"
    elif ev.prompts:
        if ev.signature_prompts:
            print(f"no scored data folder to draw function signatures from: the prompts are {ev.prompts}")
        prompts, prompt_source = task_prompts(ev), str(ev.prompts)
    if prompts:
        scenarios["prompted"] = [p for p in prompts for _ in range(ev.samples_per_prompt)]
    records, metrics = [], {"model": str(model_dir), "objective": loaded.info.objective,
                            "tokens_seen": loaded.info.tokens_seen}
    attribute_metrics = {name: {} for name in attribute_scorers}  # each attribute's misalignment, by scenario
    for scenario, prompts in scenarios.items():
        texts = sample(loaded, cfg.sampling, prompts, desc=f"sampling ({scenario})")
        # What is judged (docs/method.md, Evaluation): the continuation alone, or with its prompt (PEP8).
        scored = [judged(p, t, ev.score_prompt) for p, t in zip(prompts, texts, strict=True)]
        scores = scorer.score_texts(scored)
        by_attribute = {name: a.score_texts(scored) for name, a in attribute_scorers.items()}
        for i, (p, t, s) in enumerate(zip(prompts, texts, scores, strict=True)):
            records.append({"scenario": scenario, "prompt": p, "text": t, "score": s})
            if by_attribute:
                records[-1]["attribute_scores"] = {name: a_scores[i] for name, a_scores in by_attribute.items()}
        # a prompted sample's standard errors are over its prompt's samples (`misalignment`)
        clusters = prompts if scenario == "prompted" else None
        metrics[scenario] = misalignment(scores, ev.hit_threshold, ev.expected_max_k, clusters)
        causes = cause_rates(scorer, [t for t, s in zip(scored, scores, strict=True) if s is not None])
        if causes is not None:
            metrics[scenario]["causes"] = causes
        metrics[scenario]["empty_samples"] = sum(not t.strip() for t in texts)
        if scenario == "prompted":
            metrics[scenario]["prompts"], metrics[scenario]["scored_with_prompt"] = prompt_source, ev.score_prompt
        metrics[scenario]["unscorable_samples"] = scores.count(None)
        for name, a_scores in by_attribute.items():
            attribute_metrics[name][scenario] = {
                **misalignment(a_scores, ev.hit_threshold, ev.expected_max_k, clusters),
                "unscorable_samples": a_scores.count(None)}
        if scenario == "unconditional":
            metrics["diversity"] = diversity(texts)
    if attribute_metrics:
        metrics["attributes"] = attribute_metrics
    if data_dir is not None:
        metrics.update(capability(loaded, cfg, data_dir))
    if ev.downstream:
        from phf.evaluation.downstream import downstream

        metrics["downstream"] = downstream(loaded, Path(model_dir), cfg, out_dir)
    if ev.kl_reference:
        metrics.update(kl_capability(loaded, model_dir, cfg, kl_cache_dir))
    return metrics, records, list(attribute_scorers)
