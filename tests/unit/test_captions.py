"""Captions behind one interface: tags (real YAMNet on real ESC-10 clips), file, labels, and the cache.

SALMONN's checkpoints (Whisper, BEATs, Vicuna-13B) are not available here: only its error path is tested.
"""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from tests.conftest import require, shared_path, tone

from audioprobe.dissect import captions
from audioprobe.dissect.cache import TextCache
from audioprobe.dissect.captions import Clip, caption_clips
from audioprobe.llm import MissingModel

RATE = 16000


def quiet_log(*_):
    pass


@pytest.fixture(scope="module")
def yamnet(yamnet_tflite):
    require("tensorflow")
    from audioprobe import models

    return models.load("yamnet", {"kind": "yamnet", "numerics": "float"}, str(yamnet_tflite))


@pytest.fixture(scope="module")
def class_names():
    return captions.read_class_map(shared_path("models", "yamnet", "yamnet_class_map.csv"))


@pytest.fixture
def counting_tagger(yamnet):
    """YAMNet's tagger, counting how many clips it is asked to tag."""
    tagger = captions.model_tagger(yamnet)

    def counted(waveforms):
        counted.clips += len(waveforms)
        return tagger(waveforms)

    counted.__dict__.update(tagger.__dict__, clips=0)
    return counted


def esc10_clip(category: str, index: int = 0) -> Clip:
    root = shared_path("data", "esc10")
    meta = pd.read_csv(root / "meta.csv")
    row = meta[meta["category"] == category].iloc[index]
    waveform, rate = sf.read(root / row["path"], dtype="float32")
    return Clip(row["esc50_filename"], waveform, rate, {"category": category}, row["path"])


def synthetic(clip_id: str, waveform, rate=RATE) -> Clip:
    return Clip(clip_id, np.asarray(waveform, dtype=np.float32), rate)


def click_train(per_second=10, seconds=2.0, rate=RATE):
    signal = np.zeros(int(seconds * rate), np.float32)
    signal[::rate // per_second] = 0.9
    return signal


# --- tags --------------------------------------------------------------------------------------------------
def test_tags_name_the_dog_in_a_dog_bark(counting_tagger, class_names):
    settings = {"tagger": counting_tagger, "class_names": class_names}
    dog, rain = esc10_clip("dog"), esc10_clip("rain")
    made = caption_clips("tags", [dog, rain], settings, cache=None, log=quiet_log)
    assert "Dog" in made[0] or "Bark" in made[0]
    assert "Rain" in made[1] and "noisy" in made[1]
    assert made == caption_clips("tags", [dog, rain], settings, cache=None, log=quiet_log)


def test_tags_hear_quiet_loud_and_onsets(counting_tagger, class_names):
    clips = [synthetic("quiet", tone(2.0, freq=440) / 100), synthetic("loud", tone(2.0, freq=440)),
             synthetic("clicks", click_train())]
    quiet, loud, clicks = caption_clips("tags", clips, {"tagger": counting_tagger, "class_names": class_names},
                                        cache=None, log=quiet_log)
    assert quiet.startswith("A quiet, low-pitched, tonal sound that is steady")
    assert loud.startswith("A loud, low-pitched, tonal sound that is steady")
    assert "rapid repeated impacts" in clicks


def test_acoustic_measurements():
    clicks = captions.measure(click_train(per_second=10, seconds=2.0), RATE)
    assert 8 <= clicks["onsets_per_s"] <= 11
    three = np.zeros(2 * RATE)
    three[[1000, 9000, 20000]] = 0.9
    assert captions.measure(three, RATE)["onsets"] == 3
    noise = captions.measure(0.1 * np.random.default_rng(0).standard_normal(RATE), RATE)
    assert noise["flatness"] > captions.NOISY_FLATNESS and noise["centroid_hz"] > captions.BRIGHT_HZ
    assert captions.measure(tone(1.0, freq=440), RATE)["level_dbfs"] == pytest.approx(-9.0, abs=0.1)
    assert captions.sound_sentence(captions.measure(np.zeros(RATE), RATE)).startswith("A near-silent")


def test_resemblance_sentence():
    assert captions.resemblance_sentence(["Glass", "Chink, clink", "Shatter"]) == \
        "It sounds most like Glass, Chink and clink or Shatter."
    assert captions.resemblance_sentence([]) == "It does not resemble any common sound class clearly."


def test_tags_keep_only_confident_classes(class_names):
    scores = np.zeros(len(class_names))
    scores[[0, 1, 494]] = [0.9, 0.04, 0.5]  # Speech, Child speech (too low), Silence (excluded)
    settings = {"tagger": lambda w: np.tile(scores, (len(w), 1)), "class_names": class_names}
    made = caption_clips("tags", [synthetic("a", tone(1.0))], settings, cache=None, log=quiet_log)
    assert class_names[494] == "Silence"
    assert made[0].endswith("It sounds most like Speech.")
    settings["min_score"] = 0.95
    made = caption_clips("tags", [synthetic("a", tone(1.0))], settings, cache=None, log=quiet_log)
    assert made[0].endswith("It does not resemble any common sound class clearly.")


def test_tags_cache_skips_the_tagger_until_a_setting_changes(counting_tagger, class_names, tmp_path):
    cache = TextCache(tmp_path / "cache")
    clips = [synthetic("tone", tone(1.0)), synthetic("clicks", click_train(seconds=1.0))]
    settings = {"tagger": counting_tagger, "class_names": class_names}
    first = caption_clips("tags", clips, settings, cache, log=quiet_log)
    assert counting_tagger.clips == 2
    lines = []
    assert caption_clips("tags", clips, settings, TextCache(tmp_path / "cache"), log=lines.append) == first
    assert counting_tagger.clips == 2
    assert any("2 of 2 from the cache" in line for line in lines)
    assert any("captions/s" in line for line in lines)
    caption_clips("tags", clips, {**settings, "top": 1}, cache, log=quiet_log)
    assert counting_tagger.clips == 4
    renamed = [Clip("other id", clip.waveform, clip.sample_rate) for clip in clips]
    caption_clips("tags", renamed, settings, cache, log=quiet_log)  # same audio: cached
    assert counting_tagger.clips == 4


def test_tags_need_a_tagger():
    with pytest.raises(ValueError, match="model_tagger"):
        caption_clips("tags", [synthetic("a", tone(1.0))], {}, cache=None, log=quiet_log)


def test_read_class_map_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="yamnet_class_map.csv"):
        captions.read_class_map(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("name\nDog\n")
    with pytest.raises(ValueError, match="index, mid, display_name"):
        captions.read_class_map(tmp_path / "bad.csv")


def test_yamnet_class_map_has_521_classes(class_names):
    assert len(class_names) == 521 and class_names[0] == "Speech"


# --- file --------------------------------------------------------------------------------------------------
def file_clips():
    return [Clip("dog_1", np.zeros(10, np.float32), RATE, path="dog/1-100032-A-0.wav"),
            Clip("rain_1", np.zeros(10, np.float32), RATE, path="rain/1-17367-A-10.wav")]


def test_file_captions_from_csv_by_clip_id_or_path(tmp_path):
    by_id = tmp_path / "by_id.csv"
    pd.DataFrame({"clip_id": ["rain_1", "dog_1"],
                  "caption": ["Rain falls.", "A dog barks."]}).to_csv(by_id, index=False)
    assert caption_clips("file", file_clips(), {"path": str(by_id)}, None, log=quiet_log) == \
        ["A dog barks.", "Rain falls."]
    by_path = tmp_path / "by_path.csv"
    pd.DataFrame({"path": ["dog/1-100032-A-0.wav", "rain/1-17367-A-10.wav"],
                  "caption": ["A dog barks.", "Rain falls."]}).to_csv(by_path, index=False)
    assert caption_clips("file", file_clips(), {"path": str(by_path)}, None, log=quiet_log) == \
        ["A dog barks.", "Rain falls."]


def test_file_captions_from_salmonn_style_json(tmp_path):
    path = tmp_path / "salmonn_esc50.json"
    path.write_text(json.dumps({"1-100032-A-0.wav": "A dog barks.", "1-17367-A-10.wav": "Rain falls."}))
    assert caption_clips("file", file_clips(), {"path": str(path)}, None, log=quiet_log) == \
        ["A dog barks.", "Rain falls."]
    assert captions.captioner_name("file", {"path": str(path)}) == "file(salmonn_esc50.json)"


def test_file_captions_list_missing_clips(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"dog_1": "A dog barks."}))
    with pytest.raises(KeyError, match=r"partial.json has no caption for 1 of 2 clips, e\.g\. rain_1"):
        caption_clips("file", file_clips(), {"path": str(path)}, None, log=quiet_log)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        caption_clips("file", file_clips(), {"path": str(tmp_path / "nowhere.json")}, None, log=quiet_log)


# --- labels ------------------------------------------------------------------------------------------------
def test_label_captions():
    clips = [Clip("a", np.zeros(4, np.float32), RATE, {"material": "glass"}),
             Clip("b", np.zeros(4, np.float32), RATE, {"material": "wood_block"})]
    assert caption_clips("labels", clips, {"column": "material"}, None, log=quiet_log) == \
        ["A recording of glass.", "A recording of wood block."]
    assert caption_clips("labels", clips, {"column": "material", "template": "{label} being tapped"}, None,
                         log=quiet_log)[0] == "glass being tapped"
    assert captions.captioner_name("labels", {"column": "material"}) == "labels(material)"
    with pytest.raises(KeyError, match="'a' has no label 'size'"):
        caption_clips("labels", clips, {"column": "size"}, None, log=quiet_log)


# --- salmonn and names -------------------------------------------------------------------------------------
def test_salmonn_names_every_missing_key(tmp_path):
    (tmp_path / "whisper-large-v2").mkdir()
    settings = {"source": str(tmp_path / "SALMONN"), "whisper": str(tmp_path / "whisper-large-v2"),
                "beats": str(tmp_path / "BEATs_iter3_plus_AS2M.pt")}
    with pytest.raises(MissingModel) as raised:
        caption_clips("salmonn", [synthetic("a", tone(1.0))], settings, None, log=quiet_log)
    message = str(raised.value)
    for key in ("source", "checkpoint", "beats", "vicuna"):
        assert f"dissect.captions.salmonn.{key}" in message
    assert "dissect.captions.salmonn.whisper" not in message


def test_captioner_names():
    def tagger(waveforms):
        return np.zeros((len(waveforms), 521))

    tagger.name = "yamnet"
    assert captions.captioner_name("tags", {"tagger": tagger}) == "tags(yamnet)"
    assert captions.captioner_name("tags", {"tagger": tagger, "tagger_name": "panns"}) == "tags(panns)"
    assert captions.captioner_name("salmonn", {}) == "salmonn"


def test_unknown_backend():
    with pytest.raises(ValueError, match="tags, file, salmonn, labels"):
        caption_clips("whisper", [], {}, None)


def test_musicnn_tags_a_clip_for_the_captions():
    """musicnn can be the tagger (dissect.captions.tagger: auto picks it when YAMNet is dissected): its 50
    MagnaTagATune tags ship with the family, and a drum loop is captioned with a percussive tag."""
    from audioprobe import models
    from audioprobe.models.registry import spec_of
    from tests.unit.test_musicnn import drum_loop

    entry = {"kind": "musicnn", "checkpoint": "MTT_musicnn"}
    adapter = models.load("musicnn", entry, None)
    settings = {"tagger": captions.model_tagger(adapter), "class_names": spec_of("musicnn").tags(entry),
                "min_score": 0.1, "top": 3, "exclude": []}
    (caption,) = captions.TagCaptioner(settings).caption([synthetic("drums", drum_loop(3.5), 16000)])
    assert any(tag in caption for tag in ("drums", "beat", "techno")), caption


def test_a_tagger_on_the_logits_layer_gives_the_networks_own_scores():
    """The tagger reads musicnn's taggram (its logits), from which forward_from takes their sigmoid without
    running the graph again: the same scores as the graph's own continuation."""
    from audioprobe import models
    from tests.unit.test_musicnn import drum_loop

    adapter = models.load("musicnn", {"kind": "musicnn", "checkpoint": "MTT_musicnn"}, None)
    assert adapter.head_layer == "taggram"
    clips = np.stack([drum_loop(1.0), np.sin(np.linspace(0, 2000, 16000)).astype(np.float32) * 0.3])
    logits = adapter.activations(clips, ["taggram"])["taggram"]
    through_the_graph = adapter._continue_numpy("taggram", logits, {}, None)["scores"].mean(axis=1)
    np.testing.assert_allclose(captions.model_tagger(adapter)(clips), through_the_graph, atol=1e-6)
