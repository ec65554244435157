"""Toxicity scorers of sentences: a segment's score is the probability that it is toxic (docs/method.md, Tasks).

- profanity: alt-profanity-check, a linear model that ships in the package (offline default);
- detoxify: Detoxify, the paper's scorer (downloads its checkpoint once);
- classifier: any Hugging Face sequence-classification model (a local folder or a hub name).

The two neural scorers run where `scorer.device` says (auto: a GPU when there is one, one scoring process per GPU),
in `scorer.dtype` (auto: bfloat16 on a GPU that has it, else float16; float32 on the CPU), in batches of
`scorer.batch_size` segments of similar token lengths, so that little compute goes to padding.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING

from phf.errors import PHFError
from phf.extras import needs
from phf.scorers.base import ScorerUnavailable, SegmentScorer
from phf.scorers.segment import Segmenter

if TYPE_CHECKING:  # imported where used: the profanity scorer's processes need no torch
    import torch

DETOXIFY_MODELS = ("original", "unbiased", "original-small", "unbiased-small", "multilingual")

# Label names a toxicity classifier gives its positive class, in order of preference; a name that
# starts with a negation ("non-toxic", "nothate", "not_offensive") is the negative class.
TOXIC_WORDS = ("toxic", "offensive", "hate", "abusive", "insult", "obscene", "profan")
NEGATED = re.compile(r"^(non|not|no[-_ ])", re.IGNORECASE)


class ProfanityScorer(SegmentScorer):
    """alt-profanity-check's probability that a text is offensive.

    A bag-of-words linear model (TF-IDF + linear SVM) of offensive language, not a contextual
    toxicity model: it reacts to words, not to what a sentence means ("I hate bigots" and an insult
    without swear words both fool it). Its training data includes the Davidson hate-speech tweets,
    so evaluating it on those overstates its accuracy.
    """

    name = "profanity"

    def __init__(self, segmenter: Segmenter):
        super().__init__(segmenter)
        # Imported here: importing the package loads its model from disk.
        from profanity_check import predict_prob

        self._predict_prob = predict_prob

    def score_segments(self, texts: list[str]) -> list[float]:
        return [float(p) for p in self._predict_prob(texts)] if texts else []


def placement(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """Where and in what precision a classifier scores, from `scorer.device` and `scorer.dtype`."""
    import torch

    from phf.device import default_device

    where = default_device() if device == "auto" else torch.device(device)
    if where.type == "cuda" and not torch.cuda.is_available():
        raise PHFError(f"scorer.device={device}: no CUDA device here; scorer.device=auto uses one when there is")
    if dtype != "auto":
        return where, getattr(torch, dtype)
    if where.type != "cuda":
        return where, torch.float32
    return where, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class _BatchedClassifier:
    """A tokenizer and a sequence-classification model scoring texts in padded batches of similar lengths."""

    def __init__(self, tokenizer, model, batch_size: int, sigmoid: bool, device: str = "auto", dtype: str = "auto"):
        self.device, dtype = placement(device, dtype)
        model = model.to(device=self.device, dtype=dtype)
        self.tokenizer, self.model, self.batch_size, self.sigmoid = tokenizer, model.eval(), batch_size, sigmoid
        if tokenizer.pad_token is None:  # GPT-2-like tokenizers: the usual choice, eos as padding
            if tokenizer.eos_token is None:
                raise PHFError("the classifier's tokenizer has neither a padding nor an end-of-sequence token")
            tokenizer.pad_token = tokenizer.eos_token
            model.config.pad_token_id = tokenizer.eos_token_id  # where GPT-2-like models find the last token
        # The tokenizer's limit, unless unset (a huge sentinel); never beyond the position embeddings.
        limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
        self.max_length = min(n for n in limits if n is not None)

    def probabilities(self, texts: list[str]) -> torch.Tensor:
        """A (texts x labels) tensor of probabilities, rows in the order of `texts`. All texts are tokenized at once
        (the fast tokenizer's own threads), then batched by token length, each batch padded to its longest."""
        import torch

        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]))
        out = torch.empty(len(texts), self.model.config.num_labels)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                logits = self.model(**self._padded(encoded, rows)).logits.float()
                out[rows] = (logits.sigmoid() if self.sigmoid else logits.softmax(-1)).cpu()
        return out

    def _padded(self, encoded, rows: list[int]) -> dict[str, torch.Tensor]:
        """The model's inputs for `rows`: each field padded on the tokenizer's side, with the attention mask."""
        import torch
        from torch.nn.utils.rnn import pad_sequence

        pad = {"input_ids": self.tokenizer.pad_token_id, "attention_mask": 0}
        return {key: pad_sequence([torch.tensor(encoded[key][i]) for i in rows], batch_first=True,
                                  padding_value=pad.get(key, 0), padding_side=self.tokenizer.padding_side
                                  ).to(self.device, non_blocking=True)
                for key in encoded.keys() if key in ("input_ids", "attention_mask", "token_type_ids")}


class DetoxifyScorer(SegmentScorer):
    """Detoxify's 'toxicity' probability (Hanu & Unitary team), the scorer of the paper's toxicity task.

    `model`: 'original' (BERT trained on the Jigsaw Toxic Comment challenge, the paper's), 'unbiased'
    (RoBERTa, Jigsaw Unintended Bias), their '-small' ALBERT versions, 'multilingual', or a local
    checkpoint file in Detoxify's format.
    """

    name = "detoxify"

    def __init__(self, segmenter: Segmenter, model: str = "original", batch_size: int = 256, device: str = "auto",
                 dtype: str = "auto"):
        super().__init__(segmenter)
        detox = load_detoxify(model)
        if "toxicity" not in detox.class_names:
            raise PHFError(f"scorer detoxify: model {model!r} has no 'toxicity' output; its outputs: "
                           f"{', '.join(detox.class_names)}")
        # Detoxify's outputs are independent sigmoids, one per attribute.
        self.column = detox.class_names.index("toxicity")
        self.classifier = _BatchedClassifier(detox.tokenizer, detox.model, batch_size, sigmoid=True, device=device,
                                             dtype=dtype)

    def score_segments(self, texts: list[str]) -> list[float]:
        return self.classifier.probabilities(texts)[:, self.column].tolist() if texts else []


def load_detoxify(model: str):
    with needs("detoxify", "scorer detoxify"):
        from detoxify import Detoxify
    import torch

    hub = "the tokenizer and config of its base model from the Hugging Face hub into the hub's cache"
    if model in DETOXIFY_MODELS:
        # Detoxify keeps its checkpoint URLs in the module that defines the class.
        url = getattr(inspect.getmodule(Detoxify), "MODEL_URLS", {}).get(
            model, "a GitHub release of unitaryai/detoxify")
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        fetched = f"its {model!r} checkpoint from {url} into torch hub's cache ({cache}), and {hub}"
        elsewhere = f"put that file in {cache} or set scorer.model=/path/to.ckpt"
        kwargs = {"model_type": model}
    elif Path(model).is_file():
        fetched, elsewhere = hub, "fill the Hugging Face cache on a machine with network and copy it here"
        kwargs = {"checkpoint": model}
    else:
        raise PHFError(f"scorer detoxify: model {model!r} is neither one of {', '.join(DETOXIFY_MODELS)} "
                       "nor a checkpoint file")
    try:
        return Detoxify(**kwargs, device="cpu")  # (then moved where scorer.device says, with its dtype)
    except OSError as e:  # URLError, HTTPError and the hub's connection errors are all OSErrors
        raise ScorerUnavailable(
            f"scorer detoxify could not load model {model!r}: {type(e).__name__}: {e}. "
            f"Detoxify downloads {fetched}. It needs the network once, then runs offline from those caches; "
            f"without network, {elsewhere}.") from e


class ClassifierScorer(SegmentScorer):
    """A Hugging Face sequence-classification model's probability of `label`.

    Softmax over the labels, or each label's sigmoid where the model is multi-label (or has a single
    output). `label` defaults to the one named like a toxic class ('toxic', 'offensive', 'hate', ...),
    else the last label. Inputs longer than the model's context are truncated.
    """

    name = "classifier"

    def __init__(self, segmenter: Segmenter, model: str, label: str | None = None, batch_size: int = 256,
                 device: str = "auto", dtype: str = "auto"):
        super().__init__(segmenter)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
            network, info = AutoModelForSequenceClassification.from_pretrained(model, output_loading_info=True)
        except (OSError, ValueError) as e:  # no such folder or hub name; a model type with no classifier
            raise PHFError(f"scorer classifier: cannot load {model!r} as a sequence-classification model "
                           f"with its tokenizer: {e}") from e
        if info["missing_keys"]:  # transformers initialised them at random: the scores would be noise
            raise PHFError(f"scorer classifier: {model!r} is not a trained sequence-classification model "
                           f"(architecture {network.config.architectures}); weights missing from it: "
                           f"{', '.join(sorted(info['missing_keys']))}")
        labels = [network.config.id2label[i] for i in range(network.config.num_labels)]
        self.label = label if label is not None else default_label(labels)
        if self.label not in labels:
            raise PHFError(f"scorer classifier: {model!r} has no label {self.label!r}; its labels: {', '.join(labels)}")
        self.column = labels.index(self.label)
        sigmoid = network.config.problem_type == "multi_label_classification" or len(labels) == 1
        self.classifier = _BatchedClassifier(tokenizer, network, batch_size, sigmoid, device, dtype)

    def score_segments(self, texts: list[str]) -> list[float]:
        return self.classifier.probabilities(texts)[:, self.column].tolist() if texts else []


def default_label(labels: list[str]) -> str:
    """The shortest label containing the first of TOXIC_WORDS that any does ('toxic' over
    'severe_toxic'), negated names excluded; else the last label (LABEL_1 of a binary model)."""
    for word in TOXIC_WORDS:
        matches = [name for name in labels if word in name.lower() and not NEGATED.match(name)]
        if matches:
            return min(matches, key=len)
    return labels[-1]
