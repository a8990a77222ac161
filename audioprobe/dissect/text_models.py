"""The text models the dissection steps load from their settings: the cached LLM, the sentence encoder and the
concept text encoder."""

from __future__ import annotations

from pathlib import Path


def cached_llm(settings: dict):
    """The configured LLM, its replies cached under ``settings["cache"]``."""
    from audioprobe.dissect.cache import TextCache
    from audioprobe.llm import CachedLLM

    cache_root = Path(settings["cache"])
    return CachedLLM(settings, TextCache(cache_root / "llm"), model_cache_dir=cache_root / "models")


def sentence_encoder(settings: dict):
    """The sentence encoder of ``dissect.concepts.text_encoder``."""
    from audioprobe.dissect.encoders import SentenceEncoder

    return SentenceEncoder(settings["concepts"]["text_encoder"])


def concept_encoder(settings: dict):
    """The concept text encoder of ``dissect.concepts`` (a sentence encoder or CLIP's text tower) and its name."""
    from audioprobe.dissect.encoders import load_text_encoder

    concepts = settings["concepts"]
    return load_text_encoder({"text_encoder": concepts["text_encoder"], "clip": concepts["clip"],
                              "clip_model": concepts["clip_model"]})
