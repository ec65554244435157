"""GLUE (Wang et al. 2019) after finetuning, the paper's measure of how well pretraining serves a narrow task:
each task finetunes the model with a new classification (or, for STS-B, regression) head with transformers'
`Trainer`, and is scored on its validation split with GLUE's own metric. A conditional model gets its aligned
tags before each input, as it is deployed.

Data: the hub's `nyu-mll/glue` for users online, or a local folder holding `train` and `validation` files
(.jsonl, .csv or .tsv) in the hub's columns (e.g. `sentence`, `label` for SST-2).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phf.errors import PHFError
from phf.extras import needs


@dataclass(frozen=True)
class GlueTask:
    fields: tuple[str, ...]  # the input text columns
    num_labels: int  # 1: regression
    metrics: tuple[str, ...] = ("accuracy",)  # GLUE's; the task's score is their mean
    validation: str = "validation"

    def score(self, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        with needs("eval", "GLUE's metrics"):
            from scipy.stats import pearsonr, spearmanr
            from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

        compute = {"accuracy": lambda: accuracy_score(labels, predictions), "f1": lambda: f1_score(labels, predictions),
                   "matthews": lambda: matthews_corrcoef(labels, predictions),
                   "pearson": lambda: pearsonr(predictions, labels)[0],
                   "spearman": lambda: spearmanr(predictions, labels)[0]}
        out = {name: float(compute[name]()) for name in self.metrics}
        return {**out, "score": float(np.mean(list(out.values())))}


GLUE = {
    "cola": GlueTask(("sentence",), 2, ("matthews",)),
    "sst2": GlueTask(("sentence",), 2),
    "mrpc": GlueTask(("sentence1", "sentence2"), 2, ("accuracy", "f1")),
    "qqp": GlueTask(("question1", "question2"), 2, ("accuracy", "f1")),
    "stsb": GlueTask(("sentence1", "sentence2"), 1, ("pearson", "spearman")),
    "mnli": GlueTask(("premise", "hypothesis"), 3, validation="validation_matched"),
    "qnli": GlueTask(("question", "sentence"), 2),
    "rte": GlueTask(("sentence1", "sentence2"), 2),
    "wnli": GlueTask(("sentence1", "sentence2"), 2),
}


def load_glue(name: str, folder: str | Path | None):
    """The task's train and validation splits (a datasets.DatasetDict with "train" and "validation")."""
    import datasets

    task = GLUE[name]
    if folder is None:  # users online
        glue = datasets.load_dataset("nyu-mll/glue", name)
        return datasets.DatasetDict(train=glue["train"], validation=glue[task.validation])
    folder = Path(folder)
    files = {}
    for split in ("train", "validation"):
        found = [p for suffix in (".jsonl", ".csv", ".tsv") for p in [folder / f"{split}{suffix}"] if p.is_file()]
        if not found:
            raise PHFError(f"{name}: no {split}.jsonl, {split}.csv or {split}.tsv in {folder}")
        files[split] = found[0]
    kinds = {p.suffix for p in files.values()}
    if len(kinds) > 1:
        raise PHFError(f"{name}: train and validation files in {folder} must be of one format, got {sorted(kinds)}")
    kind = kinds.pop()
    data = datasets.load_dataset("json" if kind == ".jsonl" else "csv",
                                 data_files={k: str(v) for k, v in files.items()},
                                 **({"delimiter": "\t"} if kind == ".tsv" else {}))
    missing = set(task.fields + ("label",)) - set(data["train"].column_names)
    if missing:
        raise PHFError(f"{name}: {files['train']} lacks the columns {sorted(missing)} "
                       f"(has {data['train'].column_names})")
    return data


def finetune_glue(loaded, model_dir: Path, name: str, folder: str | Path | None, epochs: float, learning_rate: float,
                  batch_size: int, train_examples: int | None, seed: int) -> dict[str, float]:
    """Finetune a copy of the model with a new head on one GLUE task; its validation metrics."""
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

    from phf.sampling.generate import context_window

    task, tok = GLUE[name], loaded.tokenizer
    data = load_glue(name, folder)
    if train_examples is not None:
        data["train"] = data["train"].shuffle(seed=seed).select(range(min(train_examples, len(data["train"]))))
    # As deployed: EOS, the aligned tags, then the input; the two texts of a pair on two lines.
    prefix = [tok.eos_token_id, *loaded.control("aligned")]
    limit = context_window(loaded.model.config) - len(prefix)

    def encode(batch):
        texts = ["\n".join(parts) for parts in zip(*(batch[f] for f in task.fields), strict=True)]
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        return {"input_ids": [prefix + i for i in ids], "attention_mask": [[1] * (len(prefix) + len(i)) for i in ids],
                "labels": [float(v) for v in batch["label"]] if task.num_labels == 1 else batch["label"]}

    data = data.map(encode, batched=True, remove_columns=data["train"].column_names)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=task.num_labels,
                                                               pad_token_id=tok.eos_token_id)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, num_train_epochs=epochs, learning_rate=learning_rate,
                                 per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
                                 weight_decay=0.01, warmup_steps=0.06, save_strategy="no", report_to=[],
                                 logging_strategy="no", seed=seed, use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=data["train"], processing_class=tok,
                          data_collator=DataCollatorWithPadding(tok))
        trainer.train()
        output = trainer.predict(data["validation"])
    logits = output.predictions
    predictions = logits[:, 0] if task.num_labels == 1 else logits.argmax(-1)
    return {**task.score(predictions, output.label_ids), "train_examples": len(data["train"]),
            "validation_examples": len(data["validation"])}
