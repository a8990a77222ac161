"""Listening-test packages: balanced design, swaps, catch trials, reproducibility and input checks."""
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioprobe.io.atomic import read_csv
from audioprobe.metamers import listening

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
METAMER_CONDITIONS = [("kell", "conv1"), ("kell", "conv2"), ("resnet", "layer1"), ("resnet", "layer2")]


def make_stimuli(folder: Path, targets=8, conditions=METAMER_CONDITIONS, failed=()) -> pd.DataFrame:
    """Short tones, one WAV per target and condition; ``failed`` lists (clip_id, model, layer) whose
    metamer did not pass validation."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(targets):
        clip = f"clip{index:02d}"
        for number, (model, layer) in enumerate([("natural", "natural"), *conditions]):
            t = np.arange(800) / 16000
            path = folder / f"{clip}_{model}_{layer}.wav"
            sf.write(path, 0.3 * np.sin(2 * np.pi * (200 + 50 * index + 7 * number) * t), 16000)
            rows.append({"clip_id": clip, "word": WORDS[index % len(WORDS)], "model": model, "layer": layer,
                         "path": str(path), "passed": (clip, model, layer) not in failed})
    return pd.DataFrame(rows)


@pytest.fixture
def stimuli(tmp_path):
    return make_stimuli(tmp_path / "wav")


def build(stimuli, out, **overrides):
    settings = {"participants": 5, "catch_trials": 2, "seed": 7, "words": WORDS}
    return listening.build_package(stimuli, out, **{**settings, **overrides})


def trials_of(out: Path) -> pd.DataFrame:
    return read_csv(out / "trials.csv")


def test_each_participant_hears_each_target_once_and_conditions_are_balanced(tmp_path, stimuli):
    summary = build(stimuli, tmp_path / "pkg")
    trials = trials_of(tmp_path / "pkg")
    main = trials[~trials["catch"]]
    assert set(trials["participant"]) == {1, 2, 3, 4, 5}
    for participant, group in main.groupby("participant"):
        assert sorted(group["clip_id"]) == sorted(stimuli["clip_id"].unique())
        counts = Counter(zip(group["model"], group["layer"]))
        assert len(counts) == 5, "every participant gets every condition (8 targets >= 5 conditions)"
        assert max(counts.values()) - min(counts.values()) <= 1
        assert list(trials[trials.participant == participant]["trial"]) == list(range(1, 11))
    assert summary["trials_per_participant"] == 10
    assert [c["label"] for c in summary["conditions"]] == ["natural", "kell/conv1", "kell/conv2",
                                                          "resnet/layer1", "resnet/layer2"]
    # the conditions.json counts agree with the trial list
    written = json.loads((tmp_path / "pkg" / "conditions.json").read_text())
    assert written["counts_per_participant"]["1"] == dict(Counter(
        listening.condition_label(m, l) for m, l in zip(main[main.participant == 1]["model"],
                                                         main[main.participant == 1]["layer"])))


def test_every_target_is_heard_in_every_condition_when_participants_equal_conditions(tmp_path, stimuli):
    build(stimuli, tmp_path / "pkg", participants=5)
    main = trials_of(tmp_path / "pkg").query("~catch")
    per_target = main.groupby("clip_id").apply(lambda g: set(zip(g["model"], g["layer"])), include_groups=False)
    every = {("natural", "natural"), *METAMER_CONDITIONS}
    assert all(conditions == every for conditions in per_target)


def test_near_equal_counts_when_targets_do_not_divide_evenly(tmp_path):
    stimuli = make_stimuli(tmp_path / "wav", targets=7)  # 7 targets over 5 conditions: 2,2,1,1,1
    build(stimuli, tmp_path / "pkg", participants=10, catch_trials=0)
    main = trials_of(tmp_path / "pkg")
    for _, group in main.groupby("participant"):
        counts = Counter(zip(group["model"], group["layer"]))
        assert sorted(counts.values()) == [1, 1, 1, 2, 2]
    # over all participants the conditions are used near equally too
    totals = Counter(zip(main["model"], main["layer"]))
    assert max(totals.values()) - min(totals.values()) <= 2


def test_failed_and_missing_metamers_are_swapped_for_the_natural_clip_and_recorded(tmp_path):
    stimuli = make_stimuli(tmp_path / "wav", failed={("clip03", "kell", "conv2")})
    stimuli = stimuli[~((stimuli.clip_id == "clip05") & (stimuli.model == "resnet") & (stimuli.layer == "layer1"))]
    summary = build(stimuli, tmp_path / "pkg")
    trials = trials_of(tmp_path / "pkg")
    natural_file = trials[(trials.model == "natural") & ~trials.swapped].groupby("clip_id")["stimulus"].first()

    failed = trials[(trials.clip_id == "clip03") & (trials.model == "kell") & (trials.layer == "conv2")]
    missing = trials[(trials.clip_id == "clip05") & (trials.model == "resnet") & (trials.layer == "layer1")]
    assert len(failed) == 1 and len(missing) == 1, "5 participants = 5 conditions: each heard once"
    assert failed["swapped"].all() and (failed["swap_reason"] == "failed validation").all()
    assert missing["swapped"].all() and (missing["swap_reason"] == "missing").all()
    assert (failed["stimulus"] == natural_file["clip03"]).all()
    assert (missing["stimulus"] == natural_file["clip05"]).all()
    assert trials["swapped"].sum() == 2
    assert summary["swapped"] == {"natural": 0, "kell/conv1": 0, "kell/conv2": 1, "resnet/layer1": 1,
                                  "resnet/layer2": 0}
    assert sum(summary["swapped_per_participant"].values()) == 2
    # the failed metamer's file is not in the package
    failed_source = stimuli[(stimuli.clip_id == "clip03") & (stimuli.model == "kell") & (stimuli.layer == "conv2")]
    assert failed_source["path"].iloc[0] not in set(trials["source"])


def test_catch_trials_are_natural_and_marked(tmp_path, stimuli):
    build(stimuli, tmp_path / "pkg", catch_trials=3)
    trials = trials_of(tmp_path / "pkg")
    natural_file = trials[(trials.model == "natural") & ~trials["catch"]].groupby("clip_id")["stimulus"].first()
    catch = trials[trials["catch"]]
    assert (catch.groupby("participant").size() == 3).all()
    assert (catch["model"] == "natural").all() and (catch["layer"] == "natural").all()
    assert not catch["swapped"].any()
    by_clip = stimuli[stimuli.model == "natural"].set_index("clip_id")["path"]
    assert all(by_clip[c] == s for c, s in zip(catch["clip_id"], catch["source"]))
    assert all(natural_file[c] == s for c, s in zip(catch["clip_id"], catch["stimulus"]))
    for _, group in catch.groupby("participant"):
        assert group["clip_id"].is_unique
    # catch trials are mixed in, not all at the end
    positions = catch["trial"].to_numpy()
    assert positions.min() < 10


def test_same_seed_gives_an_identical_package_and_another_seed_another_order(tmp_path, stimuli):
    build(stimuli, tmp_path / "a", seed=3)
    build(stimuli, tmp_path / "b", seed=3)
    build(stimuli, tmp_path / "c", seed=4)

    def files(folder):
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    a, c = trials_of(tmp_path / "a"), trials_of(tmp_path / "c")
    order_a = [list(g["clip_id"]) for _, g in a.groupby("participant")]
    order_c = [list(g["clip_id"]) for _, g in c.groupby("participant")]
    assert order_a != order_c
    # the same targets, in another order
    for participant in range(1, 6):
        targets_a = a[(a.participant == participant) & ~a["catch"]]["clip_id"]
        targets_c = c[(c.participant == participant) & ~c["catch"]]["clip_id"]
        assert sorted(targets_a) == sorted(targets_c)


def test_file_names_are_opaque(tmp_path, stimuli):
    summary = build(stimuli, tmp_path / "pkg")
    trials = trials_of(tmp_path / "pkg")
    audio = sorted(p.name for p in (tmp_path / "pkg" / "audio").iterdir())
    assert all(re.fullmatch(r"stim_\d{4}\.wav", name) for name in audio)
    assert set(audio) == set(trials["stimulus"])
    assert summary["audio_files"] == len(audio)
    # one file per distinct source, and each copy is byte-identical to its source
    for stimulus, group in trials.groupby("stimulus"):
        assert group["source"].nunique() == 1
        assert (tmp_path / "pkg" / "audio" / stimulus).read_bytes() == Path(group["source"].iloc[0]).read_bytes()
    # the page embeds trial numbers and file names only: no model, layer, clip or word per trial
    html = (tmp_path / "pkg" / "index.html").read_text()
    data = json.loads(re.search(r"const DATA = (\{.*?\});\n", html).group(1))
    assert set(data["participants"]) == {"1", "2", "3", "4", "5"}
    assert all(set(trial) == {"trial", "stimulus"} for trials_ in data["participants"].values() for trial in trials_)
    assert data["words"] == WORDS
    for secret in ("kell", "resnet", "conv1", "clip0"):
        assert secret not in html
    # the number does not follow the condition: natural files are not simply the first ones
    natural = sorted(set(trials.loc[trials.model == "natural", "stimulus"]))
    assert natural != audio[:len(natural)]


def test_the_folder_appears_whole_and_is_not_overwritten_by_accident(tmp_path, stimuli):
    build(stimuli, tmp_path / "pkg")
    with pytest.raises(FileExistsError, match="overwrite"):
        build(stimuli, tmp_path / "pkg", seed=8)
    build(stimuli, tmp_path / "pkg", seed=8, overwrite=True)
    assert json.loads((tmp_path / "pkg" / "conditions.json").read_text())["seed"] == 8
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a failure midway leaves nothing behind
    broken = stimuli.copy()
    broken.loc[3, "path"] = str(tmp_path / "nowhere.wav")
    with pytest.raises(FileNotFoundError):
        build(broken, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("change, error, message", [
    (lambda s: s.drop(columns=["passed"]), ValueError, r"missing column\(s\) \['passed'\]"),
    (lambda s: s.assign(path=s["path"].where(s.index != 4, "/no/such/file.wav")), FileNotFoundError,
     "not found: /no/such/file.wav"),
    (lambda s: s[s.clip_id.isin(["clip00", "clip01", "clip02"])], ValueError, "3 target clips but 5 conditions"),
    (lambda s: s[~((s.clip_id == "clip02") & (s.model == "natural"))], ValueError, "no natural clip.*clip02"),
    (lambda s: pd.concat([s, s.iloc[[1]]]), ValueError, "repeat a \\(clip_id, model, layer\\)"),
    (lambda s: s.assign(word=s["word"].replace("off", "halt")), ValueError, "not in words.*halt"),
    (lambda s: s.assign(layer=s["layer"].where(s.index != 0, "conv1")), ValueError, "model == layer"),
    (lambda s: s.assign(passed=s["passed"].astype(object).where(s.index != 2, "maybe")), ValueError, "'passed'"),
    (lambda s: s.assign(word=s["word"].where(s.index != 1, "left")), ValueError, "target's word"),
])
def test_input_errors_are_clear(tmp_path, stimuli, change, error, message):
    with pytest.raises(error, match=message):
        build(change(stimuli), tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_setting_errors_are_clear(tmp_path, stimuli):
    with pytest.raises(ValueError, match="participants must be a positive integer"):
        build(stimuli, tmp_path / "pkg", participants=0)
    with pytest.raises(ValueError, match="catch_trials=9 is more than the 8 target clips"):
        build(stimuli, tmp_path / "pkg", catch_trials=9)
    with pytest.raises(TypeError, match="DataFrame"):
        build(stimuli.to_dict("records"), tmp_path / "pkg")
    not_wav = tmp_path / "noise.txt"
    not_wav.write_text("not audio")
    with pytest.raises(ValueError, match="noise.txt is not a readable sound file"):
        build(stimuli.assign(path=stimuli["path"].where(stimuli.index != 0, str(not_wav))), tmp_path / "pkg")


def test_passed_is_ignored_for_natural_clips(tmp_path, stimuli):
    passed = stimuli["passed"].astype(object).where(stimuli.model != "natural", None)
    summary = build(stimuli.assign(passed=passed), tmp_path / "pkg")
    assert sum(summary["swapped"].values()) == 0


def test_a_failed_metamer_needs_no_file(tmp_path):
    stimuli = make_stimuli(tmp_path / "wav", failed={("clip01", "kell", "conv1")})
    chosen = (stimuli.clip_id == "clip01") & (stimuli.model == "kell") & (stimuli.layer == "conv1")
    stimuli.loc[chosen, "path"] = str(tmp_path / "diverged" / "never_written.wav")
    build(stimuli, tmp_path / "pkg")
    trials = trials_of(tmp_path / "pkg")
    assert trials.loc[(trials.clip_id == "clip01") & (trials.model == "kell") & (trials.layer == "conv1"),
                      "swapped"].all()


def test_a_package_under_a_link_out_of_results_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """results/metamers is a symbolic link to a folder outside: nothing may be created, copied or replaced
    there (the package folder, its temporary folder, its parent folders, the audio copies, an old package)."""
    import os
    import shutil

    from audioprobe.io.atomic import OutsideResultsError

    stimuli = make_stimuli(tmp_path / "wav")
    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "results").mkdir(parents=True)
    (outside / "old" / "listening").mkdir(parents=True)
    (outside / "old" / "listening" / "keep.txt").write_text("someone else's")
    os.symlink(outside, work / "results" / "metamers")
    monkeypatch.chdir(work)
    copied = []
    real_copyfile = shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", lambda src, dst, **kw: copied.append(dst) or real_copyfile(src, dst, **kw))

    def everything_outside():
        return sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))

    before = everything_outside()
    for out in ("results/metamers/commands-synth/listening", "results/metamers/old/listening"):
        with pytest.raises(OutsideResultsError, match=rf"refusing to write {out}/index.html: .*results/metamers is a "
                                                      "symbolic link"):
            build(stimuli, out, overwrite=True)
        assert everything_outside() == before and copied == []
    assert (outside / "old" / "listening" / "keep.txt").read_text() == "someone else's"
