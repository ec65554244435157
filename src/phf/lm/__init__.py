"""Language models phf samples from and scores texts with, local or remote; `load_lm` picks one from a spec."""

from __future__ import annotations

from phf.errors import PHFError
from phf.extras import needs
from phf.lm.base import LanguageModel, LMError, TextLogProb
from phf.lm.local import LocalLM

__all__ = ["LanguageModel", "TextLogProb", "LMError", "LocalLM", "load_lm"]

REMOTE = "openai:"


def load_lm(spec: str, api_key_env: str = "OPENAI_API_KEY", guidance: float = 0.0,
            tags: str = "aligned") -> LanguageModel:
    """`openai:MODEL@BASE_URL` (e.g. openai:llama-3-8b@http://127.0.0.1:8000/v1): a model behind an
    OpenAI-compatible server, its API key read from `api_key_env` if set; anything else: a local model
    folder (phf or Hugging Face) or a hub name. `guidance` and `tags`: how a conditional phf model is sampled
    (`sampling.guidance`, `sampling.tags`), for local models only."""
    if not spec.startswith(REMOTE):
        return LocalLM(spec, guidance=guidance, tags=tags)
    if guidance or tags != "aligned":
        raise PHFError(f"sampling.guidance and sampling.tags need a local phf model; {spec} is sampled by its server")
    model, _, base_url = spec[len(REMOTE):].partition("@")  # the first @: URLs may hold one, model names do not
    if not model or not base_url.startswith(("http://", "https://")):
        raise PHFError(f"malformed model spec {spec!r}: expected openai:MODEL@BASE_URL, "
                       f"e.g. openai:llama-3-8b@http://127.0.0.1:8000/v1")
    with needs("remote", f"model {spec}"):
        from phf.lm.openai_compatible import OpenAICompatibleLM

    return OpenAICompatibleLM(base_url, model, api_key_env=api_key_env)
