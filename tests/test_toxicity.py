"""Toxicity scorers: alt-profanity-check for real, the classifier on tiny random models saved to disk,
Detoxify through a stand-in module (the real one downloads its checkpoint, impossible offline)."""

from __future__ import annotations

import sys
import types
from urllib.error import URLError

import pytest
import torch

from phf.errors import PHFError
from phf.extras import MissingExtra
from phf.scorers import ScorerUnavailable
from phf.scorers.segment import Segmenter
from phf.scorers.toxicity import (
    ClassifierScorer,
    DetoxifyScorer,
    ProfanityScorer,
    default_label,
    placement,
)

WORDS = ["you", "are", "a", "nice", "kind", "idiot", "stupid", "day", "have", "good", "bad", "moron", "what", "lovely"]
TEXTS = ["you are a nice kind", "idiot", "what a lovely day you have", "stupid moron", "good", "unknown words here",
         " ".join(["bad"] * 40)]  # longer than the models' 16 positions: truncated


def tiny_tokenizer(specials: list[str], **kwargs):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*specials, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials[0]))
    tok.normalizer, tok.pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=specials[0], model_max_length=16, **kwargs)


def save_bert(folder, problem_type=None):
    from tokenizers import processors
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = tiny_tokenizer(["[UNK]", "[PAD]", "[CLS]", "[SEP]"], pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, id2label={0: "neutral", 1: "toxic"},
                        problem_type=problem_type)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def bert(tmp_path_factory):
    return save_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="session")
def gpt2(tmp_path_factory):
    """A GPT-2 classifier whose tokenizer has no padding token, as GPT-2's does not."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    folder = tmp_path_factory.mktemp("gpt2")
    tokenizer = tiny_tokenizer(["<unk>", "<eos>"], eos_token="<eos>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=16,
                        bos_token_id=1, eos_token_id=1, id2label={0: "LABEL_0", 1: "LABEL_1"})
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def one_at_a_time(scorer, texts):
    return [scorer.score_segments([t])[0] for t in texts]


# profanity


def test_profanity_ranks_offensive_above_clean():
    scorer = ProfanityScorer(Segmenter())
    clean, offensive = scorer.score_segments(["What a lovely day for a walk.", "Shut up, you fucking idiot."])
    assert 0 <= clean < 0.5 < offensive <= 1
    assert scorer.score_segments(TEXTS) == pytest.approx(one_at_a_time(scorer, TEXTS))
    assert scorer.score_segments([]) == []


def test_profanity_scores_each_sentence_of_a_document():
    [(segments, scores)] = ProfanityScorer(Segmenter()).score_documents(["Have a nice day. You are a fucking moron. "])
    assert segments == ["Have a nice day. ", "You are a fucking moron. "]
    assert scores[0] < scores[1]


# classifier


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_classifier_padding_does_not_change_scores(model, request):
    scorer = ClassifierScorer(Segmenter(), request.getfixturevalue(model), batch_size=3)
    scores = scorer.score_segments(TEXTS)
    assert all(0 <= s <= 1 for s in scores)
    assert scores == pytest.approx(one_at_a_time(scorer, TEXTS), abs=1e-5)
    assert len(set(scores)) > 1  # the texts are told apart
    assert scorer.score_texts([]) == []


def test_classifier_precision_and_device_settings(bert):
    fp32 = ClassifierScorer(Segmenter(), bert, batch_size=2).score_segments(TEXTS)
    assert placement("cpu", "auto") == (torch.device("cpu"), torch.float32)
    bf16 = ClassifierScorer(Segmenter(), bert, batch_size=2, dtype="bfloat16")
    assert bf16.classifier.model.dtype == torch.bfloat16
    assert bf16.score_segments(TEXTS) == pytest.approx(fp32, abs=2e-2)
    if not torch.cuda.is_available():
        with pytest.raises(PHFError, match="scorer.device=cuda: no CUDA device here"):
            ClassifierScorer(Segmenter(), bert, device="cuda")


def test_classifier_label_by_name_and_softmax(bert):
    toxic = ClassifierScorer(Segmenter(), bert)
    assert toxic.label == "toxic"
    neutral = ClassifierScorer(Segmenter(), bert, label="neutral")
    total = [a + b for a, b in zip(toxic.score_segments(TEXTS), neutral.score_segments(TEXTS), strict=True)]
    assert total == pytest.approx([1.0] * len(TEXTS))


def test_classifier_multi_label_is_sigmoid(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = save_bert(tmp_path, problem_type="multi_label_classification")
    scorer = ClassifierScorer(Segmenter(), folder)
    inputs = AutoTokenizer.from_pretrained(folder)(["idiot"], return_tensors="pt")
    with torch.no_grad():
        expected = AutoModelForSequenceClassification.from_pretrained(folder)(**inputs).logits.sigmoid()[0, 1]
    assert scorer.score_segments(["idiot"])[0] == pytest.approx(expected.item())


def test_classifier_unknown_label_lists_the_labels(bert):
    with pytest.raises(PHFError, match="no label 'hate'; its labels: neutral, toxic"):
        ClassifierScorer(Segmenter(), bert, label="hate")


def test_classifier_refuses_what_is_not_a_trained_classifier(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_embd=16, n_layer=1, n_head=2, n_positions=16)).save_pretrained(tmp_path)
    tiny_tokenizer(["<unk>", "<eos>"], eos_token="<eos>").save_pretrained(tmp_path)
    with pytest.raises(PHFError, match="not a trained sequence-classification model.*score.weight"):
        ClassifierScorer(Segmenter(), str(tmp_path))
    with pytest.raises(PHFError, match="cannot load"):
        ClassifierScorer(Segmenter(), str(tmp_path / "nowhere"))


@pytest.mark.parametrize("labels, expected", [
    (["neutral", "toxic"], "toxic"),
    (["non-toxic", "toxic"], "toxic"),
    (["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"], "toxic"),
    (["NOT_OFFENSIVE", "OFFENSIVE"], "OFFENSIVE"),
    (["nothate", "hate"], "hate"),
    (["LABEL_0", "LABEL_1"], "LABEL_1"),
])
def test_default_label(labels, expected):
    assert default_label(labels) == expected


# detoxify, through a stand-in module


@pytest.fixture
def fake_detoxify(monkeypatch):
    module = types.ModuleType("detoxify")
    module.MODEL_URLS = {"original": "https://github.com/unitaryai/detoxify/releases/download/toxic_original.ckpt"}
    monkeypatch.setitem(sys.modules, "detoxify", module)
    return module


def test_detoxify_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "detoxify", None)  # import fails as if not installed
    with pytest.raises(MissingExtra, match=r"pip install 'phf\[detoxify\]'"):
        DetoxifyScorer(Segmenter())


def test_detoxify_offline_says_what_it_fetched(fake_detoxify, tmp_path):
    class Detoxify:
        __module__ = "detoxify"

        def __init__(self, **kwargs):
            raise URLError("[Errno -3] Temporary failure in name resolution")

    fake_detoxify.Detoxify = Detoxify
    with pytest.raises(ScorerUnavailable) as error:
        DetoxifyScorer(Segmenter())
    message = str(error.value)
    assert "https://github.com/unitaryai/detoxify/releases/download/toxic_original.ckpt" in message
    assert "network once" in message and "scorer.model=/path/to.ckpt" in message and "name resolution" in message
    with pytest.raises(PHFError, match="neither one of original, unbiased"):
        DetoxifyScorer(Segmenter(), str(tmp_path / "missing.ckpt"))


def test_detoxify_scores_the_toxicity_output(fake_detoxify, bert, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    class Detoxify:  # what the real one holds: a tokenizer, a model and its outputs' names
        def __init__(self, model_type="original", checkpoint=None, device="cpu"):
            loaded.append(checkpoint)
            self.tokenizer = AutoTokenizer.from_pretrained(bert)
            self.model = AutoModelForSequenceClassification.from_pretrained(bert)
            self.class_names = ["insult", "toxicity"]

    loaded = []
    fake_detoxify.Detoxify = Detoxify
    checkpoint = tmp_path / "toxic.ckpt"
    checkpoint.touch()
    scorer = DetoxifyScorer(Segmenter(), str(checkpoint), batch_size=2)
    assert loaded == [str(checkpoint)]  # a file is passed as Detoxify's checkpoint, not as a model type
    with torch.no_grad():
        inputs = scorer.classifier.tokenizer(["idiot"], return_tensors="pt")
        expected = scorer.classifier.model(**inputs).logits.sigmoid()[0, 1].item()
    assert scorer.score_segments(["idiot"]) == pytest.approx([expected])
    assert scorer.score_segments(TEXTS) == pytest.approx(one_at_a_time(scorer, TEXTS), abs=1e-5)
