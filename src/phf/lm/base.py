"""The one small interface phf uses to talk to a language model, local or remote:
sampling continuations and scoring texts' log-probabilities. Back ends: `LocalLM` (a Hugging Face
causal LM folder or hub name, phf's own checkpoints included) and `OpenAICompatibleLM` (an
OpenAI-compatible HTTP server: vLLM, llama.cpp, phf's own `phf serve`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from phf.errors import PHFError


@dataclass(frozen=True)
class TextLogProb:
    """log p(text | context) summed over the text's tokens, with the counts to normalise it by."""

    logprob: float
    tokens: int
    chars: int


class LMError(PHFError):
    """A language model could not answer: a bad endpoint, a timeout after retries, a malformed response."""


class LanguageModel(ABC):
    name: str  # shown in reports and cache keys

    @abstractmethod
    def generate(self, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0) -> list[str]:
        """One sampled continuation per prompt ("" = unconditional), without the prompt."""

    @abstractmethod
    def log_likelihood(self, texts: list[str]) -> list[TextLogProb]:
        """log p(text) of each text as a whole document (after the model's document-start context;
        a conditional phf model also gets `<|aligned|>`, as in the paper's evaluation)."""
