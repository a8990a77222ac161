"""Issue 11: bad input at ingest is rejected per file with a reason, or stops the run naming it.

Every bad input is made here in tmp_path: truncated and garbled files, empty label cells, clashing and
duplicated names, FIFOs, symbolic links in and out of the root, and float audio far above full scale.
"""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprobe.datasets import manifest, naming
from audioprobe.datasets.build import build_manifest
from audioprobe.io import audio
from audioprobe.io.atomic import read_csv
from tests.conftest import deadline as shared_deadline
from tests.conftest import tone


def deadline():
    return shared_deadline(10, "something opened a FIFO")


def settings(**options):
    return {"kind": "folder", "labels": {"scheme": "folder"}, "clip_seconds": 1.0, "hop_seconds": None,
            "min_seconds": 0.1, "on_bad_input": "skip", **options}


def build(root, out, **options):
    """build_manifest on ``root``; returns (manifest, rejected) as read back from the files it wrote."""
    build_manifest(root, settings(**options), out / "manifest.csv", out / "rejected.csv", name="mine")
    return manifest.read_manifest(out / "manifest.csv"), read_csv(out / "rejected.csv")


def rejections(rejected):
    return {row["path"]: (row["reason"], row["detail"]) for _, row in rejected.iterrows()}


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


# --- 1. truncated audio ----------------------------------------------------------------------------------


def test_truncated_wav_and_mp3_reach_rejected_csv_with_frame_counts(tmp_path, write_wav):
    write_wav("audio/ok/good.wav", tone(1.0))
    cut_in_half(write_wav("audio/bad/half.wav", tone(1.0)))
    for fmt in ("mp3", "flac", "ogg"):
        path = tmp_path / "audio" / "bad" / f"half.{fmt}"
        sf.write(path, tone(2.0), 16000, format=fmt.upper())
        cut_in_half(path)
    garbled = tmp_path / "audio" / "bad" / "garbled.mp3"
    sf.write(garbled, tone(2.0), 16000, format="MP3")
    data = bytearray(garbled.read_bytes())
    middle, span = len(data) // 2, len(data) // 10
    data[middle:middle + span] = np.random.default_rng(0).integers(0, 256, span, dtype=np.uint8).tobytes()
    garbled.write_bytes(bytes(data))

    clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    assert clips["path"].tolist() == ["ok/good.wav"]
    found = rejections(rejected)
    assert found["bad/half.wav"][0] == "truncated"
    assert found["bad/half.wav"][1].startswith("decoded 79") and found["bad/half.wav"][1].endswith(
        "of 16000 frames the header declares")
    for mp3 in ("bad/half.mp3", "bad/garbled.mp3"):
        assert found[mp3][0] == "truncated" and found[mp3][1].endswith("of 32000 frames the header declares")
    assert found["bad/half.flac"][0] in ("unreadable", "truncated")
    assert found["bad/half.ogg"][0] in ("unreadable", "truncated")


def test_a_truncated_file_stops_the_run_by_name_under_fail(tmp_path, write_wav):
    cut_in_half(write_wav("half.wav", tone(1.0)))
    with pytest.raises(audio.BadAudio, match=r"half\.wav: truncated: decoded \d+ of 16000 frames"):
        build(tmp_path, tmp_path / "out", on_bad_input="fail")


# --- 2. missing labels -----------------------------------------------------------------------------------


def labelled_folder(tmp_path, write_wav, rows):
    for name in ("a.wav", "b.wav", "c.wav"):
        write_wav(f"audio/{name}", tone(1.0))
    (tmp_path / "audio" / "labels.csv").write_text("path,category,source\n" + "".join(r + "\n" for r in rows))
    return {"kind": "folder", "labels": {"scheme": "csv", "csv": "labels.csv", "columns": ["category"],
                                         "group_column": "source"}}


def test_empty_label_cells_are_rejected_per_file_under_skip(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "b.wav,,s2", "c.wav,  ,s3"])
    clips, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert clips["path"].tolist() == ["a.wav"] and clips["label_category"].tolist() == ["dog"]
    assert rejections(rejected) == {
        "b.wav": ("missing_label", "labels.csv line 3: column 'category' is empty"),
        "c.wav": ("missing_label", "labels.csv line 4: column 'category' is empty")}


def test_an_empty_group_cell_is_a_missing_label_too(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "b.wav,cat,"])
    _, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert rejections(rejected) == {"b.wav": ("missing_label", "labels.csv line 3: column 'source' is empty")}


def test_an_empty_path_cell_is_a_missing_path_naming_the_line(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", ",cat,s2"])
    clips, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert clips["path"].tolist() == ["a.wav"]
    assert rejected["reason"].tolist() == ["missing_path"]
    assert rejected["detail"].tolist() == ["labels.csv line 3: the path cell (column 'path') is empty"]


def test_an_empty_label_cell_under_fail_names_the_table_the_file_and_the_column(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "b.wav,,s2"])
    with pytest.raises(manifest.ManifestError) as err:
        build(tmp_path / "audio", tmp_path / "out", on_bad_input="fail", **options)
    message = str(err.value)
    assert "b.wav" in message and "labels.csv" in message and "'category'" in message
    assert not (tmp_path / "out").exists()


def test_read_manifest_refuses_an_empty_label_instead_of_reading_nan(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "clip_id,path,offset,duration,sample_rate,channels,group,label_category\n"
        "a,a.wav,0.0,1.0,16000,1,a,dog\nb,b.wav,0.0,1.0,16000,1,b,\n")
    with pytest.raises(manifest.ManifestError, match=r"column 'label_category' is empty for clip 'b'"):
        manifest.read_manifest(tmp_path / "manifest.csv")


# --- 3. clip ids -----------------------------------------------------------------------------------------


def test_ordinary_names_keep_their_ids(tmp_path, write_wav):
    write_wav("audio/dog/a b.wav", tone(1.0))
    write_wav("audio/cat/c-1.wav", tone(1.0))
    clips, _ = build(tmp_path / "audio", tmp_path / "out")
    assert clips["clip_id"].tolist() == ["cat_c-1", "dog_a_b"]
    write_wav("latent/WT_01.wav", tone(1.0))
    windows = manifest.ingest(tmp_path / "latent", naming.sources(tmp_path / "latent", {"scheme": "latentaudio"}),
                              clip_seconds=0.5, hop_seconds=0.48, min_seconds=0.1, on_bad_input="fail").clips
    assert windows["clip_id"].tolist() == ["WT_01@0000000ms", "WT_01@0000480ms"]


def test_accented_names_are_transliterated_and_clashes_get_a_hash(tmp_path, write_wav):
    for name in ("ä.wav", "ö.wav", "a.wav", "猫.wav"):
        write_wav(f"audio/{name}", tone(1.0))
    clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    ids = dict(zip(clips["path"], clips["clip_id"]))
    assert rejected.empty and len(set(ids.values())) == 4
    assert ids["a.wav"] == "a" and ids["ö.wav"] == "o"
    assert ids["ä.wav"].startswith("a-") and len(ids["ä.wav"]) == 10
    assert ids["猫.wav"].startswith("_-") and len(ids["猫.wav"]) == 10


def test_a_name_spelled_nfd_as_macos_writes_it_gets_the_same_id_as_nfc(tmp_path, write_wav):
    nfc, nfd = "\u00e4.wav", "a\u0308.wav"  # both spell ä.wav
    assert nfc != nfd
    assert manifest.clip_stems([nfc])[nfc] == manifest.clip_stems([nfd])[nfd]
    assert manifest.clip_stems([nfc, "a.wav"])[nfc] == manifest.clip_stems([nfd, "a.wav"])[nfd]
    ids = []
    for folder, name in (("linux", nfc), ("macos", nfd)):
        write_wav(f"{folder}/{name}", tone(1.0))
        write_wav(f"{folder}/a.wav", tone(1.0))
        clips, _ = build(tmp_path / folder, tmp_path / f"out-{folder}")
        ids.append(sorted(clips["clip_id"]))
    assert ids[0] == ids[1] and ids[0][0] == "a" and ids[0][1].startswith("a-")


def test_files_differing_only_in_extension_keep_it(tmp_path, write_wav):
    write_wav("audio/x.wav", tone(1.0))
    sf.write(tmp_path / "audio" / "x.ogg", tone(1.0), 16000, format="OGG")
    sf.write(tmp_path / "audio" / "y.flac", tone(1.0), 16000, format="FLAC")
    clips, _ = build(tmp_path / "audio", tmp_path / "out")
    assert dict(zip(clips["path"], clips["clip_id"])) == {"x.ogg": "x.ogg", "x.wav": "x.wav", "y.flac": "y"}


def test_ids_are_a_pure_function_of_the_file_list():
    paths = ["ä.wav", "a.wav", "x.mp3", "x.ogg", "dog/a.wav", "dog_a.wav", "x.mp3.wav", "猫.wav"]
    stems = manifest.clip_stems(paths)
    assert manifest.clip_stems(list(reversed(paths))) == stems
    assert len(set(stems.values())) == len(paths)
    assert stems["a.wav"] == "a" and stems["dog_a.wav"] == "dog_a" and stems["dog/a.wav"].startswith("dog_a-")
    assert stems["x.ogg"] == "x.ogg" and stems["x.mp3"] != stems["x.mp3.wav"]


def test_a_remaining_clash_is_an_error_naming_both_paths():
    clips = manifest.pd.DataFrame({"clip_id": ["a", "a"], "path": ["one/a.wav", "two/a.wav"]})
    with pytest.raises(manifest.ManifestError, match=r"'one/a\.wav' and 'two/a\.wav'"):
        manifest.check_unique_ids(clips)


def test_a_duplicated_csv_row_is_rejected_per_row_or_named_under_fail(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "b.wav,cat,s2", "a.wav,dog,s1"])
    clips, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert clips["path"].tolist() == ["a.wav", "b.wav"] and clips["clip_id"].tolist() == ["a", "b"]
    assert rejections(rejected) == {
        "a.wav": ("duplicate", "labels.csv line 4 lists it again (first on line 2); delete one row")}
    with pytest.raises(manifest.ManifestError, match=r"a\.wav: duplicate: labels\.csv line 4"):
        build(tmp_path / "audio", tmp_path / "out2", on_bad_input="fail", **options)


def test_the_same_source_given_twice_to_ingest_is_rejected_once(tmp_path, write_wav):
    write_wav("a.wav", tone(1.0))
    twice = [manifest.Source("a.wav", {"class": "x"}, "a"), manifest.Source("./a.wav", {"class": "x"}, "a")]
    result = manifest.ingest(tmp_path, twice, clip_seconds=1.0, hop_seconds=None, min_seconds=0.1,
                             on_bad_input="skip")
    assert result.clips["clip_id"].tolist() == ["a"]
    assert rejections(result.rejected) == {"./a.wav": ("duplicate", "the same file as a.wav, listed again")}


# --- 4. FIFOs and symbolic links -------------------------------------------------------------------------


def test_a_fifo_named_wav_is_rejected_without_hanging(tmp_path, write_wav):
    write_wav("audio/dog/a.wav", tone(1.0))
    os.mkfifo(tmp_path / "audio" / "dog" / "pipe.wav")
    with deadline():
        assert naming.audio_files(tmp_path / "audio") == ["dog/a.wav"]  # what manifest_inputs lists
        clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    assert clips["path"].tolist() == ["dog/a.wav"]
    assert rejections(rejected) == {
        "dog/pipe.wav": ("not_regular_file", "a FIFO (named pipe), not a regular file; it was not opened")}


def test_a_fifo_listed_in_a_label_table_is_rejected_without_hanging(tmp_path, write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "pipe.wav,cat,s2"])
    os.mkfifo(tmp_path / "audio" / "pipe.wav")
    with deadline():
        _, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert rejections(rejected)["pipe.wav"][0] == "not_regular_file"


def test_a_file_reached_by_a_link_and_by_its_own_path_is_read_once(tmp_path, write_wav):
    write_wav("audio/real/a.wav", tone(1.0))
    write_wav("audio/real/b.wav", tone(1.0))
    os.symlink(tmp_path / "audio" / "real" / "a.wav", tmp_path / "audio" / "alias.wav")
    os.symlink("a.wav", tmp_path / "audio" / "real" / "zz.wav")  # a relative link
    clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    assert clips["path"].tolist() == ["alias.wav", "real/b.wav"]  # the first path in sorted order is kept
    assert rejections(rejected) == {
        "real/a.wav": ("duplicate", "the same file as alias.wav (via a symbolic link), which is read instead"),
        "real/zz.wav": ("duplicate", "the same file as alias.wav (via a symbolic link), which is read instead")}


def test_a_linked_folder_inside_the_root_is_followed_under_the_links_name(tmp_path, write_wav):
    write_wav("audio/store/v2/x.wav", tone(1.0))
    write_wav("audio/store/v2/y.wav", tone(1.0))
    os.symlink(tmp_path / "audio" / "store" / "v2", tmp_path / "audio" / "dog")
    os.symlink(tmp_path / "audio", tmp_path / "audio" / "store" / "v2" / "loop")  # back to the root
    with deadline():
        assert naming.audio_files(tmp_path / "audio") == ["dog/x.wav", "dog/y.wav", "store/v2/x.wav",
                                                          "store/v2/y.wav"]
        clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    assert dict(zip(clips["path"], clips["label_class"])) == {"dog/x.wav": "dog", "dog/y.wav": "dog"}
    assert rejections(rejected) == {
        f"store/v2/{name}": ("duplicate", f"the same file as dog/{name} (via a symbolic link), which is read "
                                          f"instead") for name in ("x.wav", "y.wav")}


def test_speech_commands_word_folders_may_be_links(tmp_path, write_wav):
    for word in ("yes", "no"):
        write_wav(f"sc/_pool/v2/{word}/spk1_nohash_0.wav", tone(1.0))
        os.symlink(tmp_path / "sc" / "_pool" / "v2" / word, tmp_path / "sc" / word)
    sources = naming.sources(tmp_path / "sc", {"scheme": "speech-commands"})
    assert [(s.path, s.labels, s.group) for s in sources] == [
        ("no/spk1_nohash_0.wav", {"word": "no"}, "spk1"), ("yes/spk1_nohash_0.wav", {"word": "yes"}, "spk1")]
    result = manifest.ingest(tmp_path / "sc", sources, clip_seconds=1.0, min_seconds=0.1, on_bad_input="fail")
    assert result.clips["label_word"].tolist() == ["no", "yes"] and result.rejected.empty


def test_links_leaving_the_root_are_rejected_and_loops_end(tmp_path, write_wav):
    write_wav("audio/real/a.wav", tone(1.0))
    write_wav("elsewhere/b.wav", tone(1.0))
    os.symlink(tmp_path / "audio", tmp_path / "audio" / "real" / "loop")
    os.symlink(tmp_path / "elsewhere", tmp_path / "audio" / "away")
    os.symlink(tmp_path / "elsewhere" / "b.wav", tmp_path / "audio" / "real" / "b.wav")
    with deadline():
        clips, rejected = build(tmp_path / "audio", tmp_path / "out")
    assert clips["path"].tolist() == ["real/a.wav"]
    assert rejections(rejected) == {
        "away": ("outside_root", f"symbolic link to the folder {tmp_path / 'elsewhere'}, outside the root; its "
                                 f"files were not read"),
        "real/b.wav": ("outside_root", f"symbolic link to {tmp_path / 'elsewhere' / 'b.wav'}, outside the root")}
    assert naming.audio_files(tmp_path / "audio") == ["real/a.wav"]


def test_a_label_table_row_naming_a_file_again_through_a_link_is_a_duplicate_naming_both_lines(tmp_path,
                                                                                                  write_wav):
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "b.wav,cat,s2", "alias.wav,dog,s3"])
    os.symlink("a.wav", tmp_path / "audio" / "alias.wav")
    clips, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert clips["path"].tolist() == ["a.wav", "b.wav"]
    assert rejections(rejected) == {"alias.wav": (
        "duplicate", "labels.csv line 4 lists the same file as 'a.wav' (via a symbolic link) on line 2; delete "
                     "one row")}


def test_a_label_table_row_leaving_the_root_is_rejected_under_skip(tmp_path, write_wav):
    write_wav("outside.wav", tone(1.0))
    options = labelled_folder(tmp_path, write_wav, ["a.wav,dog,s1", "../outside.wav,cat,s2"])
    _, rejected = build(tmp_path / "audio", tmp_path / "out", **options)
    assert rejections(rejected)["../outside.wav"][0] == "outside_root"


# --- 5. levels -------------------------------------------------------------------------------------------


def loud_folder(write_wav):
    write_wav("audio/loud/x.wav", tone(1.0) * 660, subtype="FLOAT")  # peaks at 330
    write_wav("audio/quiet/y.wav", tone(1.0))


def test_a_float_wav_peaking_at_330_is_kept_flagged_and_logged_under_warn(tmp_path, write_wav, caplog):
    loud_folder(write_wav)
    with caplog.at_level(logging.WARNING):
        clips, _ = build(tmp_path / "audio", tmp_path / "out")
    peaks = dict(zip(clips["path"], clips["peak"]))
    assert peaks["loud/x.wav"] == pytest.approx(330, rel=1e-4) and peaks["quiet/y.wav"] <= 0.5
    assert "gain" not in clips.columns
    warnings = [r.getMessage() for r in caplog.records if "peaks at" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("loud/x.wav peaks at 330, above full scale 1.0")
    row = clips.set_index("path", drop=False).loc["loud/x.wav"]
    assert np.abs(manifest.load_clip(tmp_path / "audio", row, 16000, 16000)).max() == pytest.approx(330, rel=1e-3)


@pytest.mark.parametrize("on_bad_input", ["skip", "fail"])
def test_a_float_wav_peaking_at_330_stops_the_run_under_error(tmp_path, write_wav, on_bad_input):
    loud_folder(write_wav)
    with pytest.raises(manifest.ManifestError, match=r"loud/x\.wav peaks at 330.*datasets\.mine\.clip_level"):
        build(tmp_path / "audio", tmp_path / "out", clip_level="error", on_bad_input=on_bad_input)
    assert not (tmp_path / "out").exists()


def test_a_float_wav_peaking_at_330_is_scaled_to_peak_one_under_normalise(tmp_path, write_wav):
    loud_folder(write_wav)
    clips, _ = build(tmp_path / "audio", tmp_path / "out", clip_level="normalise")
    rows = clips.set_index("path", drop=False)
    assert rows.loc["loud/x.wav", "gain"] == pytest.approx(1 / 330, rel=1e-4)
    assert rows.loc["quiet/y.wav", "gain"] == 1.0
    loud = manifest.load_clip(tmp_path / "audio", rows.loc["loud/x.wav"], 16000, 16000)
    quiet = manifest.load_clip(tmp_path / "audio", rows.loc["quiet/y.wav"], 16000, 16000)
    assert np.abs(loud).max() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(quiet).max() == pytest.approx(0.5, abs=1e-3)


def test_an_unknown_clip_level_is_refused_by_the_schema_naming_the_key_and_warn_is_its_default():
    """The schema is the one place that knows the choices and the default; ingest does not check again."""
    import yaml

    from audioprobe import config

    schema = config.load_schema()
    default = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
    assert "clip_level" not in default["datasets"]["maas-synth"]
    assert config.fill_defaults(default, schema)["datasets"]["maas-synth"]["clip_level"] == "warn"
    default["datasets"]["maas-synth"]["clip_level"] = "loud"
    with pytest.raises(config.ConfigError, match=r"^datasets\.maas-synth\.clip_level: 'loud' is not one of "
                                                 r"\['warn', 'error', 'normalise'\]"):
        config.check_schema(default, schema)
