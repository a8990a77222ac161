"""Listening-test packages: a balanced design of natural clips and metamers, packed as a static web page.

A package is a folder that people open in a browser straight from disk (``index.html``, no server):

    out_dir/
        index.html        the test page, with every participant's trial list and the word list embedded
        audio/stim_0001.wav ...   the sounds, under opaque names (the name does not reveal the condition)
        trials.csv        the key: participant, trial, stimulus, clip_id, word, model, layer, catch,
                          swapped, swap_reason, source
        conditions.json   the design: conditions, counts per participant, swaps, seed

The design follows Feather et al. (2023): every participant hears every target clip once; the condition a
target is heard in rotates over participants like a Latin square, so each participant gets a near-equal
number of trials per condition and, with at least as many participants as conditions, each target is
heard in every condition by someone. A metamer that failed validation (or is missing) is replaced by the
natural clip and the trial is marked ``swapped``; clean catch trials (natural clips) are added to check
attention. Each participant's trials are shuffled with a seed, so the same inputs give the same package.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from audioprobe.io.atomic import check_inside_results, write_csv, write_json, write_text

NATURAL = "natural"
REQUIRED_COLUMNS = ("clip_id", "word", "model", "layer", "path", "passed")
TRIAL_COLUMNS = ("participant", "trial", "stimulus", "clip_id", "word", "model", "layer", "catch", "swapped",
                 "swap_reason", "source")
TEMPLATE = "listening_test.html"
DATA_PLACEHOLDER = "/*__LISTENING_TEST_DATA__*/null"
FORMAT_VERSION = 1

# Independent random streams drawn from the one seed, so that changing one part of the design (say the
# number of catch trials) leaves the others as they were.
_STREAM_TARGET_ORDER, _STREAM_CATCH, _STREAM_TRIAL_ORDER, _STREAM_FILE_NAMES = range(4)


def condition_label(model: str, layer: str) -> str:
    """``natural`` for natural clips, ``model/layer`` for metamers."""
    return NATURAL if (model, layer) == (NATURAL, NATURAL) else f"{model}/{layer}"


def normalise_word(word) -> str:
    """How answers and words are compared: case-folded, surrounding whitespace removed, inner runs of
    whitespace collapsed to one space."""
    return " ".join(str(word).split()).casefold()


def build_package(stimuli: pd.DataFrame, out_dir, *, participants: int, catch_trials: int, seed: int,
                  words: list[str], overwrite: bool = False, title: str = "Listening test") -> dict:
    """Build a listening-test package in ``out_dir`` (see the module docstring) and return its summary.

    ``stimuli`` has one row per candidate sound: clip_id (the natural target it was made from), word (the
    true word), model, layer, path (a WAV file) and passed (whether the metamer was validated). Natural
    clips have model == layer == "natural" (their passed value is ignored); every clip_id needs exactly one. The conditions are natural
    plus every model x layer pair in ``stimuli``, in order of first appearance. ``words`` are the
    answers offered on the page and must include every target's word.

    The folder appears whole or not at all: it is built in a temporary folder beside ``out_dir`` and
    renamed. An existing ``out_dir`` is an error unless ``overwrite`` is set.

    Returns the summary written to conditions.json, plus ``out_dir``.
    """
    out_dir = Path(out_dir)
    # Before anything is resolved, created or copied: the package folder itself must be really inside results/
    # (when it is under it), so that a symbolic link there cannot lead the temporary folder, the audio copies or
    # the replaced old package outside.
    check_inside_results(out_dir / "index.html")
    participants = _positive_int(participants, "participants")
    catch_trials = _non_negative_int(catch_trials, "catch_trials")
    seed = _non_negative_int(seed, "seed")
    frame = _check_stimuli(stimuli)
    words = _check_words(words, frame)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; remove it or pass overwrite=True")

    natural = frame[frame.condition == NATURAL].set_index("clip_id")
    targets = list(natural.index)
    conditions = _conditions(frame)
    if len(targets) < len(conditions):
        raise ValueError(f"{len(targets)} target clips but {len(conditions)} conditions "
                         f"({', '.join(condition_label(*c) for c in conditions)}): each participant hears each "
                         "target once, so there must be at least as many targets as conditions to give every "
                         "participant every condition")
    if catch_trials > len(targets):
        raise ValueError(f"catch_trials={catch_trials} is more than the {len(targets)} target clips; catch "
                         "trials are natural clips drawn without replacement")
    _check_audio(frame)

    trials = _design(frame, natural, targets, conditions, participants, catch_trials, seed)
    names = _stimulus_names(trials["source"], seed)
    trials.insert(2, "stimulus", trials["source"].map(names))
    given = dict(zip(frame["source"], frame["path"]))
    trials["source"] = trials["source"].map(given)  # the path as the caller gave it, not resolved
    trials = trials[list(TRIAL_COLUMNS)]
    summary = _summary(trials, conditions, participants, catch_trials, seed, words, len(targets), len(names))

    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / "audio").mkdir()
        for source, name in sorted(names.items(), key=lambda item: item[1]):
            shutil.copyfile(source, tmp / "audio" / name)
        write_csv(tmp / "trials.csv", trials)
        write_json(tmp / "conditions.json", summary)
        write_text(tmp / "index.html", render_page(trials, words, title=title))
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**summary, "out_dir": str(out_dir)}


def render_page(trials: pd.DataFrame, words, *, title: str = "Listening test") -> str:
    """index.html: the packaged template with each participant's trials (trial number and stimulus file
    only, never the condition) and the word list embedded as JSON."""
    data = {"title": title, "audio_dir": "audio", "words": list(words),
            "participants": {str(int(p)): [{"trial": int(t), "stimulus": s}
                                           for t, s in zip(group["trial"], group["stimulus"])]
                             for p, group in trials.sort_values(["participant", "trial"]).groupby("participant")}}
    template = resources.files("audioprobe.metamers").joinpath(TEMPLATE).read_text(encoding="utf-8")
    if template.count(DATA_PLACEHOLDER) != 1:
        raise RuntimeError(f"the page template {TEMPLATE} must contain {DATA_PLACEHOLDER} exactly once")
    return template.replace(DATA_PLACEHOLDER, _script_json(data))


def _design(frame, natural, targets, conditions, participants, catch_trials, seed) -> pd.DataFrame:
    """All trials, participant by participant, in presentation order (trial numbers from 1)."""
    by_condition = frame.set_index(["clip_id", "model", "layer"])
    rng = np.random.default_rng([seed, _STREAM_TARGET_ORDER])
    # The rotation runs over the targets in a seeded random order, so that the input's order (say, by
    # word) cannot line up with the conditions.
    order = [targets[i] for i in rng.permutation(len(targets))]
    n_conditions = len(conditions)
    records = []
    for participant in range(1, participants + 1):
        rotation = (participant - 1) % n_conditions
        rows = []
        for position, clip in enumerate(order):
            model, layer = conditions[(position + rotation) % n_conditions]
            row = {"participant": participant, "clip_id": clip, "word": natural.at[clip, "word"],
                   "model": model, "layer": layer, "catch": False, "swapped": False, "swap_reason": ""}
            if (model, layer) == (NATURAL, NATURAL):
                row["source"] = natural.at[clip, "source"]
            elif (clip, model, layer) not in by_condition.index:
                row.update(swapped=True, swap_reason="missing", source=natural.at[clip, "source"])
            else:
                candidate = by_condition.loc[(clip, model, layer)]
                if candidate["passed"]:
                    row["source"] = candidate["source"]
                else:
                    row.update(swapped=True, swap_reason="failed validation", source=natural.at[clip, "source"])
            rows.append(row)
        rows.extend(_catch_rows(participant, rows, natural, catch_trials, seed))
        shuffle = np.random.default_rng([seed, _STREAM_TRIAL_ORDER, participant]).permutation(len(rows))
        for trial, index in enumerate(shuffle, start=1):
            records.append({**rows[index], "trial": trial})
    return pd.DataFrame.from_records(records)


def _catch_rows(participant, rows, natural, count, seed) -> list[dict]:
    """``count`` natural clips, preferring targets this participant does not hear naturally already, so
    the catch trial is not the very same sound twice."""
    if count == 0:
        return []
    rng = np.random.default_rng([seed, _STREAM_CATCH, participant])
    heard_natural = [r["source"] == natural.at[r["clip_id"], "source"] for r in rows]
    preferred = [r["clip_id"] for r, same in zip(rows, heard_natural) if not same]
    others = [r["clip_id"] for r, same in zip(rows, heard_natural) if same]
    chosen = list(rng.permutation(preferred))[:count]
    chosen += list(rng.permutation(others))[:count - len(chosen)]
    return [{"participant": participant, "clip_id": clip, "word": natural.at[clip, "word"], "model": NATURAL,
             "layer": NATURAL, "catch": True, "swapped": False, "swap_reason": "",
             "source": natural.at[clip, "source"]} for clip in chosen]


def _stimulus_names(sources: pd.Series, seed: int) -> dict[str, str]:
    """One opaque file name per distinct source file, numbered in a seeded random order (numbering in
    input or condition order would let a listener guess the condition from the name)."""
    unique = sorted(set(sources))
    width = max(4, len(str(len(unique))))
    numbers = np.random.default_rng([seed, _STREAM_FILE_NAMES]).permutation(len(unique)) + 1
    return {source: f"stim_{number:0{width}d}.wav" for source, number in zip(unique, numbers)}


def _summary(trials, conditions, participants, catch_trials, seed, words, n_targets, n_files) -> dict:
    labels = [condition_label(*c) for c in conditions]
    main = trials[~trials["catch"]]
    label = [condition_label(m, l) for m, l in zip(main["model"], main["layer"])]
    counts = pd.crosstab(main["participant"], pd.Categorical(label, categories=labels), dropna=False)
    swapped = main[main["swapped"]]
    swapped_label = [condition_label(m, l) for m, l in zip(swapped["model"], swapped["layer"])]
    return {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "participants": participants,
        "targets": n_targets,
        "catch_trials": catch_trials,
        "trials_per_participant": n_targets + catch_trials,
        "audio_files": n_files,
        "conditions": [{"label": label, "model": m, "layer": l} for label, (m, l) in zip(labels, conditions)],
        "counts_per_participant": {str(int(p)): {c: int(counts.at[p, c]) for c in labels} for p in counts.index},
        "swapped": {c: int(sum(1 for s in swapped_label if s == c)) for c in labels},
        "swapped_per_participant": {str(p): int((swapped["participant"] == p).sum())
                                    for p in range(1, participants + 1)},
        "words": list(words),
    }


def _check_stimuli(stimuli) -> pd.DataFrame:
    if not isinstance(stimuli, pd.DataFrame):
        raise TypeError(f"stimuli must be a pandas DataFrame, got {type(stimuli).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in stimuli.columns]
    if missing:
        raise ValueError(f"stimuli is missing column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} "
                         f"(it has {list(stimuli.columns)})")
    if stimuli.empty:
        raise ValueError("stimuli has no rows")
    frame = stimuli[list(REQUIRED_COLUMNS)].copy()
    for column in ("clip_id", "word", "model", "layer", "path"):
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            raise ValueError(f"stimuli column {column!r} is empty in row(s) {list(frame.index[blank][:10])}")
        frame[column] = frame[column].astype(str)
    frame["condition"] = [condition_label(m, l) for m, l in zip(frame["model"], frame["layer"])]
    # natural clips are always used: their passed value (often empty, as nothing validates them) is ignored
    frame["passed"] = [True if c == NATURAL else _as_bool(v, i)
                       for i, v, c in zip(frame.index, frame["passed"], frame["condition"])]
    half = (frame["model"] == NATURAL) != (frame["layer"] == NATURAL)
    if half.any():
        row = frame[half].iloc[0]
        raise ValueError(f"natural clips need model == layer == {NATURAL!r}; clip {row.clip_id!r} has model "
                         f"{row.model!r} and layer {row.layer!r}")
    duplicated = frame.duplicated(["clip_id", "model", "layer"], keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ValueError(f"{int(duplicated.sum())} rows repeat a (clip_id, model, layer), e.g. clip "
                         f"{row.clip_id!r} in {row.condition}: give one sound per target and condition")
    natural = frame[frame.condition == NATURAL]
    if natural.empty:
        raise ValueError(f"stimuli has no natural clips (rows with model == layer == {NATURAL!r})")
    orphans = sorted(set(frame.clip_id) - set(natural.clip_id))
    if orphans:
        raise ValueError(f"{len(orphans)} clip_id(s) have metamers but no natural clip, e.g. {orphans[:5]}: "
                         "every target needs its natural sound (it stands in for failed metamers)")
    words = natural.set_index("clip_id")["word"]
    mismatch = [c for c, w in zip(frame.clip_id, frame.word) if normalise_word(w) != normalise_word(words[c])]
    if mismatch:
        raise ValueError(f"the word of a metamer must be its target's word; clip {mismatch[0]!r} has rows "
                         f"with different words")
    frame["source"] = [str(Path(p).resolve()) for p in frame["path"]]
    return frame


def _check_words(words, frame) -> list[str]:
    if isinstance(words, str) or not hasattr(words, "__iter__"):
        raise TypeError("words must be a list of strings (the answers offered on the page)")
    cleaned = []
    seen = set()
    for word in words:
        text = " ".join(str(word).split())
        if not text:
            raise ValueError("words contains an empty word")
        if normalise_word(text) not in seen:
            seen.add(normalise_word(text))
            cleaned.append(text)
    if not cleaned:
        raise ValueError("words is empty: give the words people may answer")
    absent = sorted({w for w in frame["word"] if normalise_word(w) not in seen})
    if absent:
        raise ValueError(f"{len(absent)} target word(s) are not in words, e.g. {absent[:5]}: people could not "
                         "give the right answer")
    return cleaned


def _check_audio(frame) -> None:
    """Every file that may be played must be a readable, non-empty WAV; a failed metamer's file is never
    used, so it need not exist."""
    used = frame[frame["passed"]]
    for path, source in dict(zip(used["path"], used["source"])).items():
        if not os.path.isfile(source):
            raise FileNotFoundError(f"stimulus WAV file not found: {path}")
        try:
            info = sf.info(source)
        except Exception as error:  # soundfile raises its own error types, and RuntimeError
            raise ValueError(f"stimulus file {path} is not a readable sound file: {error}") from error
        if info.format != "WAV":
            raise ValueError(f"stimulus file {path} is {info.format}, not WAV")
        if info.frames == 0:
            raise ValueError(f"stimulus file {path} is empty (no samples)")


def _conditions(frame) -> list[tuple[str, str]]:
    pairs = list(dict.fromkeys(zip(frame["model"], frame["layer"])))
    pairs.remove((NATURAL, NATURAL))
    return [(NATURAL, NATURAL)] + pairs


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder onto ``out_dir``; an old folder is moved aside first and then removed."""
    check_inside_results(out_dir / "index.html")  # again, just before the rename (see build_package)
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.resolve().parent))
    os.rmdir(old)
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _script_json(data) -> str:
    """JSON that is safe inside an inline <script>: no '<', '>' or '&' that could end the element."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _as_bool(value, row) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"stimuli column 'passed' must be True or False, got {value!r} in row {row}")


def _positive_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask

