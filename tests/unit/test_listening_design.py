"""Where the catch trials fall in each participant's trial order (the listening-test design)."""
import numpy as np
import pandas as pd
import soundfile as sf

from audioprobe.io.atomic import read_csv
from audioprobe.metamers import listening

WORDS = ["yes", "no", "up", "down"]
TARGETS, CATCH, PARTICIPANTS = 12, 4, 6


def package(folder, seed):
    rows = []
    t = np.arange(400) / 16000
    for index in range(TARGETS):
        for number, (model, layer) in enumerate([("natural", "natural"), ("A", "l1"), ("A", "l2")]):
            path = folder / "wav" / f"{index}_{layer}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                sf.write(path, 0.2 * np.sin(2 * np.pi * (200 + 20 * index + 5 * number) * t), 16000)
            rows.append({"clip_id": f"c{index:02d}", "word": WORDS[index % 4], "model": model, "layer": layer,
                         "path": str(path), "passed": True})
    listening.build_package(pd.DataFrame(rows), folder / f"pkg{seed}", participants=PARTICIPANTS,
                            catch_trials=CATCH, seed=seed, words=WORDS)
    return read_csv(folder / f"pkg{seed}" / "trials.csv")


def test_catch_trials_are_mixed_in_for_every_participant(tmp_path):
    """Each participant's catch trials are spread through the session: never all at the end (nor all at the
    start), and over many participants their mean position is near the middle. With 4 catch trials among 16
    a shuffled order puts all of them last with probability 1/1820 per participant; catch trials appended
    after the shuffle (or the main trials shuffled alone) put them last every time."""
    total = TARGETS + CATCH
    relative = []
    for seed in range(5):
        trials = package(tmp_path, seed)
        for participant, group in trials.groupby("participant"):
            assert sorted(group["trial"]) == list(range(1, total + 1)), participant
            positions = np.sort(group.loc[group["catch"], "trial"].to_numpy())
            assert len(positions) == CATCH
            assert positions.tolist() != list(range(total - CATCH + 1, total + 1)), (seed, participant)
            assert positions.tolist() != list(range(1, CATCH + 1)), (seed, participant)
            assert positions.min() <= total - CATCH, (seed, participant)  # at least one before the last block
            relative.extend((positions - 1) / (total - 1))
        # the participants do not share one order of catch positions
        assert trials[trials["catch"]].groupby("participant")["trial"].apply(tuple).nunique() > 1
    # 120 positions, uniform on [0, 1] if shuffled: mean 0.5 with a standard error of 0.026
    assert abs(np.mean(relative) - 0.5) < 0.1
