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


@pytest.fixture(scope="module")
def gemma_file(tmp_path_factory):
    require("llama_cpp")
    return llm.default_gguf(tmp_path_factory.mktemp("gguf-file"))


def test_the_simulator_reads_digit_probabilities_caches_them_and_follows_an_oracle_caption(gemma_file, tmp_path):
    """Gemma 270M with the default few-shot prompt, on oracle captions: each explanation's own class gets the
    highest expected score of the four (measured: dog 2.86 against at most 2.58, rain 2.76 against 2.30), and a
    second simulator on the same cache loads no model."""
    from audioprobe.config import fill_defaults, load_schema
    from audioprobe.dissect.cache import TextCache
    from audioprobe.dissect.simulation import Simulator, clip_line

    prompts = fill_defaults({"dissect": {}}, load_schema())["dissect"]["llm"]["prompts"]
    settings = {"gguf": str(gemma_file), "seed": 0, "threads": 2}

    def simulate(cache):
        simulator = Simulator(llm.CachedLLM(settings, cache, model_cache_dir=tmp_path), cache, context=512)
        values = {(e, c): simulator.score(prompts["simulation"], clip_line(prompts["simulation_line"], e,
                                                                            f"A recording of {c}."))
                  for e in ("dog", "rain") for c in ("dog", "rain", "rooster", "crying baby")}
        return values, simulator

    first, simulator = simulate(TextCache(tmp_path / "cache"))
    assert simulator.calls == 8 and all(mass > 0.9 for _, mass in first.values())
    # its record has the summaries' keys: the prefix is evaluated once, then only each question's tokens
    lines = [clip_line(prompts["simulation_line"], e, f"A recording of {c}.") for e, c in first]
    stats = simulator.stats()
    assert stats["tokens"] == simulator._prefix_tokens + sum(len(simulator._tokens(line)) for line in lines)
    assert stats["seconds"] > 0 and stats["tokens_per_second"] > 0
    # why the scale is 0-9 and not Bills' 0-10: "10" cannot be read as one token
    assert len(simulator._tokens("10")) == 2
    with pytest.raises(ValueError, match="'10' is 2 tokens"):
        simulator._single_token("10")
    for explanation in ("dog", "rain"):
        own = first[(explanation, explanation)][0]
        assert all(own > value for (e, c), (value, _) in first.items() if e == explanation and c != explanation)
    again, second = simulate(TextCache(tmp_path / "cache"))
    assert second.calls == 0 and second._model is None and again == first
    assert second.stats() == {"llm_calls": 0, "cache_hits": 8, "tokens": 0, "seconds": 0.0, "tokens_per_second": 0.0}
