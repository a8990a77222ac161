"""Writing the synthetic datasets to disk."""

from __future__ import annotations

import logging
from pathlib import Path

from audioprobe.datasets import commands_synth, maas_synth
from audioprobe.io.audio import write_wav

log = logging.getLogger(__name__)


def generate_maas_synth(folder, settings: dict, log: logging.Logger = log) -> list[str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    combos = [(m, a) for m in settings["materials"] for a in settings["actions"]]
    for number, (material, action) in enumerate(combos, start=1):
        for take in range(1, settings["takes"] + 1):
            sound = maas_synth.recording(material, action, take, seed=settings["seed"],
                                         seconds=settings["recording_seconds"], sample_rate=settings["sample_rate"])
            name = maas_synth.file_name(material, action, take)
            write_wav(folder / name, sound, settings["sample_rate"])
            written.append(name)
        log.info("%d/%d material x action pairs written (%s %s)", number, len(combos), material, action)
    return written


def generate_commands_synth(folder, settings: dict, log: logging.Logger = log) -> list[str]:
    folder = Path(folder)
    written = []
    for word in settings["words"]:
        (folder / word).mkdir(parents=True, exist_ok=True)
        for index in range(settings["per_word"]):
            clip, speaker = commands_synth.utterance(
                word, index, seed=settings["seed"], voices=settings["voices"], variants=settings["variants"],
                pitch_range=settings["pitch"], rate_range=settings["rate"], snr_db_range=settings["snr_db"],
                sample_rate=settings["sample_rate"], seconds=settings["clip_seconds"])
            name = f"{word}/{speaker}_nohash_{index}.wav"
            write_wav(folder / name, clip, settings["sample_rate"])
            written.append(name)
        log.info("%s: %d clips written", word, settings["per_word"])
    return written
