"""The ESC-50 download: unpacking the official archive layout, its checks, and the manifest it feeds."""

import hashlib
import zipfile

import numpy as np
import pytest
import soundfile as sf

from audioprobe.datasets import esc50
from audioprobe.datasets.build import build_manifest
from audioprobe.datasets.manifest import read_manifest
from audioprobe.io.download import DownloadError

META = ("filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
        "1-100032-B-0.wav,1,0,dog,True,100032,B\n"
        "2-104532-A-10.wav,2,10,rain,True,104532,A\n")


def make_archive(path, meta=META, extra=()):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ESC-50-master/meta/esc50.csv", meta)
        archive.writestr("ESC-50-master/README.md", "ESC-50")
        for line in meta.splitlines()[1:]:
            name = line.split(",")[0]
            wav = path.parent / name
            sf.write(wav, 0.1 * rng.standard_normal(44100 * 5), 44100, subtype="PCM_16")
            archive.write(wav, f"ESC-50-master/audio/{name}")
        for name, data in extra:
            archive.writestr(name, data)
    return path


def test_unpacking_writes_audio_and_a_label_table_the_manifest_reads(tmp_path):
    archive = make_archive(tmp_path / "ESC-50.zip")
    labels = esc50.unpack(archive, tmp_path / "esc50")
    assert labels["path"].tolist() == ["audio/1-100032-A-0.wav", "audio/1-100032-B-0.wav", "audio/2-104532-A-10.wav"]
    assert not (tmp_path / "esc50" / "README.md").exists()
    settings = {"kind": "esc50", "clip_seconds": 5.0, "hop_seconds": None, "min_seconds": 0.1,
                "on_bad_input": "fail"}
    build_manifest(tmp_path / "esc50", settings, tmp_path / "manifest.csv", tmp_path / "rejected.csv")
    clips = read_manifest(tmp_path / "manifest.csv")
    assert clips["label_category"].tolist() == ["dog", "dog", "rain"]
    assert clips["group"].tolist() == ["100032", "100032", "104532"]  # takes of one recording stay together


def test_an_archive_member_that_climbs_out_is_refused(tmp_path):
    archive = make_archive(tmp_path / "bad.zip", extra=[("ESC-50-master/../../evil.wav", b"x")])
    with pytest.raises(ValueError, match="outside the archive"):
        esc50.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil.wav").exists()


def test_files_missing_from_the_archive_are_named(tmp_path):
    archive = tmp_path / "short.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ESC-50-master/meta/esc50.csv", META)
    with pytest.raises(ValueError, match="3 files listed in meta/esc50.csv are not in audio/, e.g. 1-100032-A-0.wav"):
        esc50.unpack(archive, tmp_path / "out")


def test_a_local_archive_is_checked_against_the_pinned_sha256(tmp_path):
    archive = make_archive(tmp_path / "ESC-50.zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    esc50.fetch_archive("http://unused.invalid/x.zip", archive, digest, config_key="datasets.esc50")
    with pytest.raises(DownloadError, match="datasets.esc50.sha256"):
        esc50.fetch_archive("http://unused.invalid/x.zip", archive, "0" * 64, config_key="datasets.esc50")


def test_offline_the_error_says_where_to_put_the_archive(tmp_path):
    with pytest.raises(DownloadError, match="Put the ESC-50 zip at .*missing.zip"):
        esc50.fetch_archive("http://127.0.0.1:9/ESC-50.zip", tmp_path / "missing.zip", None,
                            config_key="datasets.esc50")
