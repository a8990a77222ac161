"""Captions of audio clips, from one of several backends behind :func:`caption_clips`.

- ``tags`` (default, offline): a sentence written from an AudioSet tagger's top classes (YAMNet) and
  measured acoustic properties (level, brightness, onsets, duration, noisiness).
- ``file``: captions made elsewhere (e.g. SALMONN's ``{filename: caption}`` JSON), from a CSV or JSON file.
- ``salmonn``: SALMONN run from local checkpoints with the code of a local clone of its repository.
- ``labels``: an oracle for controlled checks, "A recording of {label}." from a ground-truth label column.

Captions made by a model (``tags``, ``salmonn``) go through a :class:`~audioprobe.dissect.cache.TextCache`
keyed by the clip's audio content, the backend and everything its output depends on (model identity,
prompt, settings), so an unchanged clip is never captioned twice. ``file`` and ``labels`` only look
captions up, so they are not cached (a cache would go stale when the file changes).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioprobe.llm import MissingModel

BACKENDS = ("tags", "file", "salmonn", "labels")
PROGRESS_EVERY = 50
BATCH_SIZE = 32

# Bump when the wording or the measurements of the ``tags`` captions change: cached captions made by the
# old code then no longer match.
TAGS_VERSION = 1
TAGGER_RATE = 16000  # YAMNet's rate; the acoustic measurements use it too, so they compare across datasets

# --- acoustic measurements (frames of 25 ms every 10 ms at 16 kHz) -------------------------------------------
FRAME = 400
HOP = 160
FFT = 512
# Level: dBFS of the RMS over the loud frames, those within LOUD_FRAMES_DB of the loudest one, so that the
# silence around a dog bark does not make it quiet (a sine of amplitude 1 is at -3 dBFS).
LOUD_FRAMES_DB = 30.0
SILENT_DBFS = -70.0
QUIET_DBFS = -35.0
LOUD_DBFS = -18.0
# Brightness: spectral centroid in Hz, of the average magnitude spectrum over 0 to 8 kHz.
DULL_HZ = 800.0
BRIGHT_HZ = 2500.0
# Noisiness: spectral flatness (geometric / arithmetic mean of the power) within bands of FLATNESS_BAND bins
# (500 Hz), averaged over bands weighted by their power and over the loud frames: about 0 for a pure or
# harmonic tone, 0.56 for white or pink noise. Whole-spectrum flatness would call most natural noises
# tonal, because their power falls by orders of magnitude towards 8 kHz.
FLATNESS_BAND = 16
TONAL_FLATNESS = 0.2
NOISY_FLATNESS = 0.4
# Onsets: peaks of the spectral flux (mean rise in dB over frequency bins from one frame to the next) that
# stand this many dB above the flux's median, at least ONSET_GAP_S apart; the rate is onsets per second.
ONSET_RISE_DB = 6.0
ONSET_GAP_S = 0.05
FLOOR_DB = -100.0  # spectra are floored here (dBFS) so that silence does not make flux from digital noise
STEADY_ONSETS_PER_S = 0.5
RAPID_ONSETS_PER_S = 3.0
SUSTAINED_FRACTION = 0.5  # a sound is sustained when at least half of its frames are loud frames
# Duration in seconds.
SHORT_S = 1.5
LONG_S = 10.0

DEFAULT_SETTINGS = {
    # "Silence" tops YAMNet's patch-averaged scores for any clip with pauses; the level words say it better
    "tags": {"min_score": 0.05, "top": 3, "exclude": ["Silence"]},
    "file": {},
    "salmonn": {"prompt": "Please describe the audio in detail.", "device": "cuda:0", "low_resource": False,
                "num_beams": 4, "do_sample": False, "max_length": 200, "seed": 0},
    "labels": {"template": "A recording of {label}."},
}
SALMONN_PATHS = ("source", "checkpoint", "whisper", "beats", "vicuna")
SALMONN_KEY = "dissect.captions.salmonn"
FILE_KEY = "dissect.captions.path"


@dataclass
class Clip:
    clip_id: str
    waveform: np.ndarray  # float32 mono
    sample_rate: int
    labels: dict[str, str] = field(default_factory=dict)
    path: str = ""  # relative to the dataset root, as in the manifest


# --- the interface -----------------------------------------------------------------------------------------
def caption_clips(backend: str, clips: list[Clip], settings: dict, cache=None, log=print) -> list[str]:
    """One caption per clip, in clip order; a clip that cannot be captioned raises naming it."""
    if backend not in BACKENDS:
        raise ValueError(f"caption backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    settings = {**DEFAULT_SETTINGS[backend], **(settings or {})}
    started = time.perf_counter()
    if backend == "file":
        captions = file_captions(clips, settings)
    elif backend == "labels":
        captions = label_captions(clips, settings)
    else:
        captioner = TagCaptioner(settings) if backend == "tags" else SalmonnCaptioner(settings)
        captions = _cached_captions(clips, captioner, cache, log)
    seconds = time.perf_counter() - started
    log(f"captions ({captioner_name(backend, settings)}): {len(captions)} clips in {seconds:.1f} s "
        f"({len(captions) / max(seconds, 1e-9):.1f} captions/s)")
    return captions


def captioner_name(backend: str, settings: dict) -> str:
    """A short name for tables: tags(yamnet), file(salmonn_esc50.json), salmonn, labels(material)."""
    settings = settings or {}
    if backend == "tags":
        return f"tags({_tagger_name(settings)})"
    if backend == "file":
        return f"file({Path(settings.get('path', '?')).name})"
    if backend == "labels":
        return f"labels({settings.get('column', '?')})"
    return backend


def audio_digest(clip: Clip) -> str:
    """sha256 of the clip's samples as float32 and its sample rate."""
    digest = hashlib.sha256(np.ascontiguousarray(clip.waveform, dtype=np.float32).tobytes())
    digest.update(f"rate={int(clip.sample_rate)}".encode())
    return digest.hexdigest()


def _cached_captions(clips: list[Clip], captioner, cache, log) -> list[str]:
    keys = [{"kind": "caption", "audio": audio_digest(clip), **captioner.identity} for clip in clips]
    captions = [cache.get(key) if cache is not None else None for key in keys]
    todo = [i for i, caption in enumerate(captions) if caption is None]
    log(f"captions: {len(clips) - len(todo)} of {len(clips)} from the cache, {len(todo)} to make")
    made_at = time.perf_counter()
    for done in range(0, len(todo), captioner.batch_size):
        batch = todo[done:done + captioner.batch_size]
        made = captioner.caption([clips[i] for i in batch])
        for i, caption in zip(batch, made, strict=True):
            if not isinstance(caption, str) or not caption.strip():
                raise RuntimeError(f"the caption backend returned no caption for clip {clips[i].clip_id!r}")
            captions[i] = caption
            if cache is not None:
                cache.put(keys[i], caption)
        _log_progress(done, len(batch), len(todo), made_at, log)
    return captions


def _log_progress(done: int, batch: int, total: int, started: float, log) -> None:
    now = done + batch
    if now // PROGRESS_EVERY > done // PROGRESS_EVERY or now == total:
        rate = now / max(time.perf_counter() - started, 1e-9)
        log(f"captions: made {now}/{total} ({rate:.1f} captions/s)")


def _resampled(clip: Clip, rate: int) -> np.ndarray:
    import soxr

    signal = np.asarray(clip.waveform, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"clip {clip.clip_id!r} is not mono: waveform shape {signal.shape}")
    if clip.sample_rate == rate:
        return signal
    return soxr.resample(signal, clip.sample_rate, rate, quality="HQ").astype(np.float32)


# --- tags: an AudioSet tagger and acoustic measurements ------------------------------------------------------
def read_class_map(path) -> list[str]:
    """Display names of YAMNet's class map CSV (columns index, mid, display_name), in index order."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"YAMNet class map {path} not found: it ships beside the model as "
                                "yamnet_class_map.csv; point the config at it")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"index", "display_name"} <= set(rows[0]):
        raise ValueError(f"{path} is not a class map: it needs the columns index, mid, display_name")
    return [row["display_name"] for row in sorted(rows, key=lambda row: int(row["index"]))]


def model_tagger(adapter, layer: str | None = None):
    """A tagger ``[clips, samples] at the adapter's rate -> [clips, classes]`` from a model adapter (YAMNet,
    musicnn): clip-level scores.

    The adapter runs the network to ``layer`` (default: its last cached layer) and on from there to its
    ``scores``; the per-patch scores are averaged over patches, as YAMNet's and musicnn's own inference do.
    """
    layer = layer or adapter.layers()[-1]

    def tagger(waveforms: np.ndarray) -> np.ndarray:
        activations = adapter.activations(waveforms, [layer])[layer]
        return adapter.forward_from(layer, activations)["scores"].mean(axis=1)

    tagger.name = adapter.name
    tagger.version = adapter.weights_sha256
    tagger.sample_rate = adapter.sample_rate
    return tagger


def _tagger_name(settings: dict) -> str:
    return settings.get("tagger_name") or getattr(settings.get("tagger"), "name", "tagger")


class TagCaptioner:
    batch_size = BATCH_SIZE

    def __init__(self, settings: dict):
        self.tagger = settings.get("tagger")
        self.class_names = settings.get("class_names")
        if not callable(self.tagger) or not self.class_names:
            raise ValueError("the tags caption backend needs settings['tagger'] (e.g. model_tagger(adapter)) "
                             "and settings['class_names'] (e.g. read_class_map('yamnet_class_map.csv'))")
        self.rate = getattr(self.tagger, "sample_rate", TAGGER_RATE)
        self.min_score = float(settings["min_score"])
        self.top = int(settings["top"])
        excluded = settings["exclude"]
        self.excluded = sorted([excluded] if isinstance(excluded, str) else excluded)
        self.candidates = np.array([name not in self.excluded for name in self.class_names])
        self.identity = {"backend": "tags", "version": TAGS_VERSION, "tagger": _tagger_name(settings),
                         "tagger_version": getattr(self.tagger, "version", ""), "min_score": self.min_score,
                         "top": self.top, "exclude": self.excluded, "thresholds": measurement_settings(),
                         "classes": hashlib.sha256("\n".join(self.class_names).encode()).hexdigest()}

    def caption(self, clips: list[Clip]) -> list[str]:
        signals = [_resampled(clip, self.rate) for clip in clips]
        scores = self._scores(signals)
        return [describe(signal, self.rate, self.top_classes(row)) for signal, row in zip(signals, scores)]

    def _scores(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """Tagger scores per clip; clips of equal length go through the tagger together."""
        scores = [None] * len(signals)
        for length in sorted({len(s) for s in signals}):
            same = [i for i, s in enumerate(signals) if len(s) == length]
            batch = np.asarray(self.tagger(np.stack([signals[i] for i in same])))
            if batch.shape != (len(same), len(self.class_names)):
                raise ValueError(f"the tagger returned scores of shape {batch.shape}, expected "
                                 f"({len(same)}, {len(self.class_names)}): one per clip and class name")
            for row, i in enumerate(same):
                scores[i] = batch[row]
        return scores

    def top_classes(self, scores: np.ndarray) -> list[str]:
        """At most ``top`` class names scoring at least ``min_score``, best first, without excluded ones."""
        order = [i for i in np.argsort(-scores, kind="stable") if self.candidates[i]][:self.top]
        return [self.class_names[i] for i in order if scores[i] >= self.min_score]


def describe(signal: np.ndarray, rate: int, classes: list[str]) -> str:
    """Two sentences: what the sound is like, and which classes it resembles."""
    return f"{sound_sentence(measure(signal, rate))} {resemblance_sentence(classes)}"


def resemblance_sentence(classes: list[str]) -> str:
    if not classes:
        return "It does not resemble any common sound class clearly."
    names = [name.replace(", ", " and ") for name in classes]  # "Chink, clink" is one class
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"It sounds most like {listed}."


def sound_sentence(measured: dict) -> str:
    seconds = measured["duration_s"]
    seconds = f"{seconds:.2f}" if seconds < 1 else f"{seconds:.1f}"
    if measured["level_dbfs"] < SILENT_DBFS:
        return f"A near-silent recording lasting {seconds} seconds."
    tonal = measured["flatness"] < TONAL_FLATNESS
    words = [_duration_word(measured["duration_s"]), _level_word(measured["level_dbfs"]),
             _timbre_word(measured["centroid_hz"], tonal), _noise_word(measured["flatness"])]
    adjectives = ", ".join(word for word in words if word)
    return f"A {adjectives + ' ' if adjectives else ''}sound {_onset_phrase(measured)}, " \
           f"lasting {seconds} seconds."


def _duration_word(seconds: float) -> str:
    return "short" if seconds < SHORT_S else "long" if seconds > LONG_S else ""


def _level_word(dbfs: float) -> str:
    return "quiet" if dbfs < QUIET_DBFS else "loud" if dbfs > LOUD_DBFS else "moderately loud"


def _timbre_word(centroid_hz: float, tonal: bool) -> str:
    """Pitch words for tonal sounds (their centroid follows the pitch), brightness words for the rest."""
    if centroid_hz < DULL_HZ:
        return "low-pitched" if tonal else "dull"
    if centroid_hz > BRIGHT_HZ:
        return "high-pitched" if tonal else "bright"
    return ""


def _noise_word(flatness: float) -> str:
    return "tonal" if flatness < TONAL_FLATNESS else "noisy" if flatness > NOISY_FLATNESS else ""


def _onset_phrase(measured: dict) -> str:
    """Rapid impacts, steady (few onsets in a sustained sound), or the number of distinct hits."""
    if measured["onsets_per_s"] > RAPID_ONSETS_PER_S:
        return "with rapid repeated impacts"
    sustained = measured["loud_fraction"] >= SUSTAINED_FRACTION
    if measured["onsets"] == 0 or (sustained and measured["onsets_per_s"] < STEADY_ONSETS_PER_S):
        return "that is steady"
    return "with one distinct hit" if measured["onsets"] == 1 else "with a few distinct hits"


def measurement_settings() -> dict:
    """The constants the acoustic words depend on, for cache keys."""
    names = ("FRAME", "HOP", "FFT", "LOUD_FRAMES_DB", "SILENT_DBFS", "QUIET_DBFS", "LOUD_DBFS", "DULL_HZ",
             "BRIGHT_HZ", "FLATNESS_BAND", "TONAL_FLATNESS", "NOISY_FLATNESS", "ONSET_RISE_DB", "ONSET_GAP_S",
             "FLOOR_DB", "STEADY_ONSETS_PER_S", "RAPID_ONSETS_PER_S", "SUSTAINED_FRACTION", "SHORT_S", "LONG_S")
    return {name: globals()[name] for name in names}


def measure(signal: np.ndarray, rate: int) -> dict:
    """Level (dBFS), spectral centroid (Hz), flatness, onsets, loud fraction and duration of a mono signal."""
    duration = len(signal) / rate
    frames = _frames(signal)
    frame_db = _db(np.mean(frames ** 2, axis=1))  # 10 log10 of the mean square: the frame's RMS in dBFS
    loud = frame_db >= frame_db.max() - LOUD_FRAMES_DB
    power = _power_spectra(frames)
    onsets = _onset_count(power, rate)
    return {"duration_s": duration, "level_dbfs": float(_db(np.mean(frames[loud] ** 2))),
            "centroid_hz": _centroid(power[loud], rate), "flatness": _flatness(power[loud]),
            "onsets": onsets, "onsets_per_s": onsets / max(duration, 1e-9), "loud_fraction": float(loud.mean())}


def _frames(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal, dtype=np.float64)
    if len(signal) < FRAME:
        signal = np.pad(signal, (0, FRAME - len(signal)))
    count = 1 + (len(signal) - FRAME) // HOP
    return np.lib.stride_tricks.sliding_window_view(signal, FRAME)[::HOP][:count]


def _power_spectra(frames: np.ndarray) -> np.ndarray:
    """Power spectra [frames, bins] of Hann-windowed frames, scaled so a full-scale sine peaks near 0 dB."""
    window = np.hanning(FRAME)
    spectra = np.fft.rfft(frames * window, FFT)
    return np.abs(spectra) ** 2 / (window.sum() / 2) ** 2


def _db(power) -> np.ndarray:
    return 10 * np.log10(np.maximum(power, 10 ** (FLOOR_DB / 10)))


def _centroid(power: np.ndarray, rate: int) -> float:
    magnitude = np.sqrt(power).mean(axis=0)
    frequencies = np.fft.rfftfreq(FFT, 1 / rate)
    return float((frequencies * magnitude).sum() / max(magnitude.sum(), 1e-12))


def _flatness(power: np.ndarray) -> float:
    bands = power[:, 1:1 + FLATNESS_BAND * ((power.shape[1] - 1) // FLATNESS_BAND)]  # no DC bin
    bands = np.maximum(bands.reshape(len(power), -1, FLATNESS_BAND), 1e-20)
    arithmetic = bands.mean(axis=2)
    flatness = np.exp(np.log(bands).mean(axis=2)) / arithmetic
    per_frame = (flatness * arithmetic).sum(axis=1) / arithmetic.sum(axis=1)
    return float(np.median(per_frame))


def _onset_count(power: np.ndarray, rate: int) -> int:
    from scipy.signal import find_peaks

    rise = np.maximum(np.diff(_db(power), axis=0), 0).mean(axis=1)
    peaks, _ = find_peaks(rise, height=np.median(rise) + ONSET_RISE_DB,
                          distance=max(1, round(ONSET_GAP_S * rate / HOP)))
    return len(peaks)


# --- file: captions made elsewhere ---------------------------------------------------------------------------
def file_captions(clips: list[Clip], settings: dict) -> list[str]:
    """Captions from a CSV (clip_id or path, caption) or a JSON {clip id or file name: caption}."""
    path = settings.get("path")
    if not path:
        raise ValueError(f"the file caption backend needs settings['path'] ({FILE_KEY}): "
                         "a CSV or JSON of captions")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption file {path} not found: make it (e.g. SALMONN's JSON) or fix {FILE_KEY}")
    table = _read_json_captions(path) if path.suffix.lower() == ".json" else _read_csv_captions(path)
    captions = [_lookup(table, clip) for clip in clips]
    missing = [clip.clip_id for clip, caption in zip(clips, captions) if caption is None]
    if missing:
        raise KeyError(f"caption file {path} has no caption for {len(missing)} of {len(clips)} clips, e.g. "
                       f"{', '.join(missing[:5])}: keys are matched on clip id, manifest path, file name "
                       "or file name without extension")
    return captions


def _read_json_captions(path: Path) -> dict[str, str]:
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"caption file {path} is not valid JSON: {err}") from err
    if not isinstance(table, dict):
        raise ValueError(f"caption file {path} must hold one JSON object {{clip id or file name: caption}}")
    return {str(key): value for key, value in table.items() if isinstance(value, str) and value.strip()}


def _read_csv_captions(path: Path) -> dict[str, str]:
    from audioprobe.io.atomic import read_csv

    table = read_csv(path)
    key = next((column for column in ("clip_id", "path") if column in table.columns), None)
    if key is None or "caption" not in table.columns:
        raise ValueError(f"caption file {path} needs the columns clip_id (or path) and caption; "
                         f"it has {', '.join(map(str, table.columns))}")
    table = table[table["caption"].notna()]
    return {str(k): str(caption) for k, caption in zip(table[key], table["caption"]) if str(caption).strip()}


def _lookup(table: dict[str, str], clip: Clip) -> str | None:
    candidates = [clip.clip_id]
    if clip.path:
        candidates += [clip.path, Path(clip.path).name, Path(clip.path).stem]
    return next((table[key] for key in candidates if key in table), None)


# --- labels: an oracle -------------------------------------------------------------------------------------
def label_captions(clips: list[Clip], settings: dict) -> list[str]:
    """``template`` filled with the clip's ground-truth label (underscores read as spaces)."""
    column = settings.get("column")
    if not column:
        raise ValueError("the labels caption backend needs settings['column']: the label column to describe")
    captions = []
    for clip in clips:
        if column not in clip.labels:
            raise KeyError(f"clip {clip.clip_id!r} has no label {column!r}; "
                           f"its labels are {', '.join(clip.labels) or 'none'}")
        captions.append(settings["template"].format(label=str(clip.labels[column]).replace("_", " ")))
    return captions


# --- SALMONN -----------------------------------------------------------------------------------------------
class SalmonnCaptioner:
    """SALMONN (v1: Whisper + BEATs + Vicuna) as its repository's ``model.py`` builds and runs it.

    ``source`` is a local clone of bytedance/SALMONN (the version with ``model.py`` at its root),
    ``checkpoint`` its salmonn_v1.pth, ``whisper`` a whisper-large-v2 folder, ``beats`` a BEATs checkpoint
    and ``vicuna`` a vicuna-13b-v1.1 folder. Every path is checked before anything is imported; the model
    loads on the first clip that is not in the cache. Decoding is beam search without sampling by default
    (SALMONN's own default samples), so a caption is reproducible; the prompt is part of the cache key.
    """

    batch_size = 1

    def __init__(self, settings: dict):
        self.paths = salmonn_paths(settings)
        self.settings = settings
        self.model = None
        generation = {key: settings[key] for key in ("num_beams", "do_sample", "max_length", "seed")}
        self.identity = {"backend": "salmonn", "prompt": settings["prompt"], "generation": generation,
                         "models": {key: _file_identity(self.paths[key]) for key in SALMONN_PATHS[1:]}}

    def caption(self, clips: list[Clip]) -> list[str]:
        if self.model is None:
            self.model = self._load()
        return [self._caption_one(clip) for clip in clips]

    def _load(self):
        import torch

        model_module = _import_from_source(self.paths["source"])
        model = model_module.SALMONN(ckpt=str(self.paths["checkpoint"]), whisper_path=str(self.paths["whisper"]),
                                     beats_path=str(self.paths["beats"]), vicuna_path=str(self.paths["vicuna"]),
                                     low_resource=bool(self.settings["low_resource"]))
        model.to(self.settings["device"])
        model.eval()
        self._torch = torch
        return model

    def _caption_one(self, clip: Clip) -> str:
        import soundfile as sf

        torch, device = self._torch, self.settings["device"]
        torch.manual_seed(int(self.settings["seed"]))
        with tempfile.TemporaryDirectory() as folder:  # SALMONN's generate reads a wav file
            wav = Path(folder) / "clip.wav"
            sf.write(wav, _resampled(clip, 16000), 16000, subtype="FLOAT")
            with torch.inference_mode(), torch.autocast(device_type=device.split(":")[0], dtype=torch.float16,
                                                        enabled=device.startswith("cuda")):
                replies = self.model.generate(str(wav), prompt=self.settings["prompt"], device=device,
                                              num_beams=int(self.settings["num_beams"]),
                                              do_sample=bool(self.settings["do_sample"]),
                                              max_length=int(self.settings["max_length"]))
        if not replies or not replies[0].strip():
            raise RuntimeError(f"SALMONN returned an empty caption for clip {clip.clip_id!r}")
        return replies[0].strip()


def salmonn_paths(settings: dict) -> dict[str, Path]:
    """SALMONN's local paths, checked; raises :class:`MissingModel` naming every missing config key."""
    problems, paths = [], {}
    for key in SALMONN_PATHS:
        value = settings.get(key)
        if not value:
            problems.append(f"{SALMONN_KEY}.{key} is not set")
        elif not Path(value).expanduser().exists():
            problems.append(f"{SALMONN_KEY}.{key} = {str(value)!r} does not exist")
        else:
            paths[key] = Path(value).expanduser()
    if "source" in paths and not (paths["source"] / "model.py").is_file():
        problems.append(f"{SALMONN_KEY}.source = {str(paths['source'])!r} has no model.py: clone "
                        "github.com/bytedance/SALMONN (its v1 code, with model.py at the root) there")
    if problems:
        raise MissingModel("SALMONN captions need local files: " + "; ".join(problems) +
                           ". Download the SALMONN checkpoint, whisper-large-v2, BEATs and vicuna-13b-v1.1 "
                           "and set these keys, or use the tags or file caption backend")
    return paths


def _file_identity(path: Path) -> dict:
    """Name and size: cheap, stable when the model folder moves, and changes when the weights do."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return {"name": path.name, "bytes": sum(file.stat().st_size for file in files)}


def _import_from_source(source: Path):
    """SALMONN's model.py, importing its own packages (beats, qformer) from the clone."""
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))
    spec = importlib.util.spec_from_file_location("salmonn_model", source / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
