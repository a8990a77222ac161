import os

import numpy as np
import pytest

from audioprobe.datasets import manifest, naming
from audioprobe.datasets.build import build_manifest
from audioprobe.io.atomic import read_csv, read_csv_config
from audioprobe.io.audio import BadAudio
from tests.conftest import shared_path, tone


def ingest(root, scheme, **options):
    settings = {"clip_seconds": 1.0, "hop_seconds": None, "min_seconds": 0.1, "on_bad_input": "skip", **options}
    return manifest.ingest(root, naming.sources(root, {"scheme": scheme}), **settings)


def test_paths_cannot_escape_the_data_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.wav").write_bytes(b"x")
    os.symlink(tmp_path / "outside.wav", root / "link.wav")
    for bad in ("../outside.wav", str(tmp_path / "outside.wav"), "link.wav", "a/../../outside.wav"):
        with pytest.raises(manifest.ManifestError):
            manifest.safe_join(root, bad)
    assert manifest.safe_join(root, "sub/x.wav") == (root / "sub" / "x.wav").resolve()


def test_long_recordings_are_cut_with_source_and_offset(write_wav, tmp_path):
    write_wav("WT_01.wav", tone(3.0))
    write_wav("MR.wav", tone(0.5))
    result = ingest(tmp_path, "latentaudio", clip_seconds=1.0, hop_seconds=0.5)
    clips = result.clips.set_index("clip_id")
    wood = clips[clips["path"] == "WT_01.wav"]
    assert wood["offset"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert (wood["duration"] == 1.0).all() and (wood["group"] == "WT_01").all()
    assert set(wood["label_material"]) == {"wood"} and set(wood["label_action"]) == {"tapping"}
    short = clips[clips["path"] == "MR.wav"]
    assert len(short) == 1 and short["duration"].iloc[0] == 0.5 and short["label_action"].iloc[0] == "rubbing"
    assert result.clips["clip_id"].is_unique


def test_bad_files_are_skipped_into_the_rejected_table_or_fail_by_name(write_wav, tmp_path):
    write_wav("good/a.wav", tone(1.0))
    data = tone(1.0)
    data[5] = np.nan
    write_wav("bad/nan.wav", data, subtype="FLOAT")
    write_wav("bad/short.wav", tone(0.02))
    (tmp_path / "bad" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    result = ingest(tmp_path, "folder")
    assert result.clips["path"].tolist() == ["good/a.wav"]
    rejected = dict(zip(result.rejected["path"], result.rejected["reason"]))
    assert rejected == {"bad/nan.wav": "non_finite", "bad/short.wav": "too_short", "bad/broken.wav": "unreadable"}
    with pytest.raises(BadAudio) as err:
        ingest(tmp_path, "folder", on_bad_input="fail")
    assert err.value.reason == "unreadable" and err.value.path.endswith("broken.wav")


def test_all_rejected_or_empty_folders_are_errors(tmp_path, write_wav):
    with pytest.raises(manifest.ManifestError, match="no audio files"):
        ingest(tmp_path, "folder")
    write_wav("x/short.wav", tone(0.01))
    with pytest.raises(manifest.ManifestError, match="every file"):
        ingest(tmp_path, "folder")


def test_latentaudio_names_are_checked(write_wav, tmp_path):
    write_wav("XQ.wav", tone(1.0))
    with pytest.raises(manifest.ManifestError, match="XQ.wav"):
        naming.sources(tmp_path, {"scheme": "latentaudio"})


def test_build_manifest_writes_manifest_and_rejections_with_config(write_wav, tmp_path):
    write_wav("audio/dog/a.wav", tone(1.0))
    write_wav("audio/dog/b.wav", tone(0.01))
    settings = {"kind": "folder", "labels": {"scheme": "folder"}, "clip_seconds": 1.0, "hop_seconds": None,
                "min_seconds": 0.1, "on_bad_input": "skip"}
    out = tmp_path / "out"
    build_manifest(tmp_path / "audio", settings, out / "manifest.csv", out / "rejected.csv")
    clips = manifest.read_manifest(out / "manifest.csv")
    assert clips["label_class"].tolist() == ["dog"]
    assert read_csv(out / "rejected.csv")["path"].tolist() == ["dog/b.wav"]
    assert read_csv_config(out / "manifest.csv")["on_bad_input"] == "skip"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.csv", "rejected.csv"]


def test_speech_commands_layout_gives_words_and_speakers():
    root = shared_path("data", "speech_commands", "speech_commands_v0.01")
    sources = naming.sources(root, {"scheme": "speech-commands"})
    assert len(sources) == 300
    first = sources[0]
    assert first.labels["word"] == first.path.split("/")[0]
    assert first.group == first.path.split("/")[1].split("_nohash_")[0]


def test_csv_labels_on_real_stereo_and_float_recordings():
    root = shared_path("data", "materials_roll")
    sources = naming.sources(root, {"scheme": "csv", "csv": "labels.csv", "columns": ["material", "class_name"]})
    result = manifest.ingest(root, sources, clip_seconds=1.0, hop_seconds=0.5, min_seconds=0.5, on_bad_input="fail")
    assert result.rejected.empty
    materials = set(result.clips["label_material"])
    assert {"brass", "steel", "plastic"} < materials and len(materials) == 4
    assert set(result.clips["channels"]) == {2} and set(result.clips["sample_rate"]) == {44100}
    assert result.clips["path"].nunique() == 20
    clip = result.clips.iloc[1]
    signal = manifest.load_clip(root, clip, 16000, 16000)
    assert signal.shape == (16000,) and np.abs(signal).max() > 0


def test_csv_scheme_names_missing_columns(tmp_path, write_wav):
    write_wav("a.wav", tone(1.0))
    (tmp_path / "labels.csv").write_text("path,kind\na.wav,x\n")
    with pytest.raises(manifest.ManifestError, match="'category'"):
        naming.sources(tmp_path, {"scheme": "csv", "csv": "labels.csv", "columns": ["category"]})
