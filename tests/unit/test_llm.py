"""The local LLM runtime: the packaged GGUF loads and generates (llama-cpp-python built as setup.sh does)."""

import pytest

from tests.conftest import require

from audioprobe import llm

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    require("llama_cpp")
    path = llm.default_gguf(tmp_path_factory.mktemp("gguf"))
    return llm.load(path, seed=0, context=512, threads=2)


def test_generation_runs_and_is_greedy(gemma):
    first = llm.chat(gemma, "Answer in one short sentence.", "What sound does a dog make?", max_tokens=24)
    again = llm.chat(gemma, "Answer in one short sentence.", "What sound does a dog make?", max_tokens=24)
    assert first and any(ch.isalpha() for ch in first)
    assert first == again


def test_a_missing_gguf_says_what_to_do(tmp_path):
    with pytest.raises(llm.MissingModel, match="set its path in the config"):
        llm.load(tmp_path / "llama-2-13b-chat.Q4_K_M.gguf")
