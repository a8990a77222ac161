"""The listening test's steps: the package of trials built from every network's validated metamers
(:mod:`audioprobe.metamers.listening`), and the analysis of the answers (:mod:`audioprobe.metamers.analysis`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.metamers.waveforms import read_waveforms


def listening_package_step(*, validation_paths: list, wav_dirs: list, waveforms_path, out_dir, settings: dict) -> None:
    """``validation_paths`` and ``wav_dirs``: one validation table and its WAV folder per network, in the same
    order; the words to answer with are those of ``waveforms_path``."""
    from audioprobe.metamers.listening import build_package

    rows = []
    for validation_path, folder in zip(validation_paths, wav_dirs):
        table = read_csv(validation_path)
        for _, row in table.iterrows():
            # a diverged metamer has no WAV: it stays in the design, failed, and the natural clip stands in
            wav = row.wav if isinstance(row.wav, str) and row.wav else f"natural/{row.clip_id}.wav"
            rows.append({"clip_id": row.clip_id, "word": row.word, "model": row.model, "layer": row.layer,
                         "path": str(Path(folder) / wav), "passed": bool(row.passed)})
        for clip, word in table[["clip_id", "word"]].drop_duplicates().itertuples(index=False):
            rows.append({"clip_id": clip, "word": word, "model": "natural", "layer": "natural",
                         "path": str(Path(folder) / "natural" / f"{clip}.wav"), "passed": True})
    stimuli = pd.DataFrame(rows).drop_duplicates(subset=["clip_id", "model", "layer"])
    words = sorted(set(read_waveforms(waveforms_path)["word"]))
    build_package(stimuli, out_dir, participants=settings["participants"], catch_trials=settings["catch_trials"],
                  seed=settings["seed"], words=words, overwrite=True)


def listening_analysis_step(*, package_dir, response_paths: list, accuracy_csv, comparison_csv, confusion_png,
                            architectures_used) -> None:
    """Recognition accuracy per network x layer, every pair of ``architectures_used`` compared, and the
    confusion matrices, from the answers in ``response_paths`` to the package's trials."""
    from audioprobe.metamers import analysis

    table = analysis.read_responses(response_paths, Path(package_dir) / "trials.csv")
    write_csv(accuracy_csv, analysis.accuracy_table(table), config={"responses": [str(p) for p in response_paths]})
    comparisons = [analysis.compare_architectures(table, a, b)
                   for i, a in enumerate(architectures_used) for b in architectures_used[i + 1:]]
    write_csv(comparison_csv, pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame(),
              config={"architectures": list(architectures_used)})
    analysis.confusion_matrices(table, confusion_png)
