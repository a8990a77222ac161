"""Simulation scoring (Bills et al. 2023): an LLM reads only an explanation and a clip's caption and predicts
how strongly the neuron fires; the explanation's score is the correlation of the predictions with the true
activations over held-out clips.

As in Bills' code the prediction is the expected value of the next-token distribution over the scale's
digits, renormalised over those digits. Two documented differences:

- The scale is 0-9, not 0-10: "10" is two tokens for Gemma's tokenizer, so its probability cannot be read in
  one step (Pearson r does not change when a scale is stretched).
- One clip per question (Bills' "one at a time" simulator): the few-shot prefix is evaluated once, then each
  clip's line is evaluated after it. Gemma 270M followed no explanation in the "all at once" layout, where the
  clips follow one another in a single prompt (measured in the README).

The digits' share of the next-token probability (``digit_mass``) is kept: when it is small the model was not
answering with a score and the expected value says little.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from audioprobe.llm import usage

log = logging.getLogger(__name__)

SCALE = tuple(str(value) for value in range(10))


def expected_value(logits, digit_ids) -> tuple[float, float]:
    """(expected digit, the digits' total probability) from one position's logits over the vocabulary."""
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    digits = probabilities[list(digit_ids)]
    mass = float(digits.sum())
    if mass == 0:
        return float("nan"), 0.0
    return float(digits @ np.arange(len(digits)) / mass), mass


def clip_line(template: str, explanation: str, caption: str) -> str:
    """One question: ``template`` with {explanation} and {caption}, captions on one line."""
    caption = " ".join(str(caption).split())
    return template.replace("{explanation}", explanation).replace("{caption}", caption)


def simulation_correlation(activations, predictions) -> float:
    """Pearson r of true activations and predictions; 0 when either is constant (as OpenAI's later code)."""
    a, p = np.asarray(activations, dtype=float), np.asarray(predictions, dtype=float)
    if a.shape != p.shape or not np.isfinite(p).all():
        raise ValueError("activations and predictions must be finite vectors over the same clips")
    if np.ptp(a) == 0 or np.ptp(p) == 0:
        return 0.0
    return float(np.corrcoef(a, p)[0, 1])


class Simulator:
    """Expected scores from a GGUF model, each (prefix, line) cached by content: a rerun with the same
    model, prompts and captions loads no model and makes no call."""

    def __init__(self, llm, cache, *, context: int):
        self.llm = llm  # a CachedLLM: the model file and its identity
        self.cache = cache
        self.context = context
        self._model = None
        self._prefix = None
        self.calls = 0
        self.tokens = 0  # evaluated: each few-shot prefix once, and every question
        self.seconds = 0.0

    def _load(self):
        if self._model is None:
            from audioprobe.llm import load

            settings = self.llm.settings
            self._model = load(self.llm.path, seed=settings.get("seed", 0), context=self.context,
                               threads=settings.get("threads"), logits_all=True)
            self._digits = [self._single_token(digit) for digit in SCALE]
        return self._model

    def _tokens(self, text: str) -> list[int]:
        return self._model.tokenize(text.encode(), add_bos=False, special=False)

    def _single_token(self, text: str) -> int:
        tokens = self._tokens(text)
        if len(tokens) != 1:
            raise ValueError(f"the simulation reads the score as one token, but {text!r} is {len(tokens)} tokens "
                             "for this model")
        return tokens[0]

    def _evaluate_prefix(self, prefix: str) -> int:
        model = self._load()
        if self._prefix != prefix:
            model.reset()
            tokens = [model.token_bos()] + self._tokens(prefix)
            self._check_length(len(tokens), "the simulation prompt's few-shot part")
            model.eval(tokens)
            self.tokens += len(tokens)
            self._prefix, self._prefix_tokens = prefix, model.n_tokens
        return self._prefix_tokens

    def _check_length(self, tokens: int, what: str) -> None:
        if tokens >= self.context:
            raise ValueError(f"{what} is {tokens} tokens, more than dissect.scoring.simulation.context "
                             f"({self.context}): raise it or shorten dissect.llm.prompts.simulation")

    def score(self, prefix: str, line: str) -> tuple[float, float]:
        key = {"model": self.llm.model_id, "simulation": "one-at-a-time expected value", "scale": list(SCALE),
               "prefix": prefix, "line": line, "seed": self.llm.settings.get("seed", 0), "context": self.context}
        cached = self.cache.get(key)
        if cached is not None:
            return tuple(cached)
        started = time.perf_counter()
        start = self._evaluate_prefix(prefix)
        model = self._model
        model.n_tokens = start  # eval drops what followed the prefix and evaluates the line after it
        tokens = self._tokens(line)
        self._check_length(start + len(tokens), "a simulation question")
        model.eval(tokens)
        value = expected_value(model.scores[model.n_tokens - 1], self._digits)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        self.tokens += len(tokens)
        self.cache.put(key, list(value))
        return value

    def stats(self) -> dict:
        return usage(self.calls, self.cache.hits, self.tokens, self.seconds)
