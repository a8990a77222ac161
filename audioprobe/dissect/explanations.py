"""The explanations Study 3 writes, one row per neuron and method, gathered from its tables for scoring:
DB and TAB (each listed similarity function's top concept, closed_concepts.csv), ICL (the concept the LLM's
keyword snaps to, icl.csv) and open concepts (the adjectives, nouns and verbs of the calibrated summary,
open_concepts.csv). A neuron without an explanation keeps its row, with the reason in ``status``."""

from __future__ import annotations

import numpy as np
import pandas as pd

CONSTANT_EXPLANATION = "an audio clip"  # the baseline that says nothing about any clip
OPEN_PARTS = ("adjectives", "nouns", "verbs")  # prepositions name no sound
COLUMNS = ["layer", "neuron", "method", "function", "explanation", "status"]


def _text(value) -> str:
    return "" if pd.isna(value) else str(value).strip()


def closed_rows(closed: pd.DataFrame) -> list[dict]:
    rows = []
    for _, row in closed.iterrows():
        concept = _text(row["top1"])
        status = "constant neuron" if row["constant"] else ("ok" if concept else "no concept")
        rows.append({"layer": row["layer"], "neuron": int(row["neuron"]), "method": row["method"],
                     "function": row["function"], "explanation": concept if status == "ok" else "",
                     "status": status})
    return rows


def icl_rows(icl: pd.DataFrame) -> list[dict]:
    return [{"layer": row["layer"], "neuron": int(row["neuron"]), "method": "icl", "function": "llm",
             "explanation": _text(row["concept"]) if row["status"] == "ok" else "", "status": row["status"]}
            for _, row in icl.iterrows()]


def open_phrase(row) -> str:
    """The open concepts of one neuron as one phrase: its adjectives, nouns and verbs, in that order."""
    words = [word for part in OPEN_PARTS for word in _text(row.get(part)).split()]
    return " ".join(dict.fromkeys(words))


def open_rows(open_table: pd.DataFrame) -> list[dict]:
    rows = []
    for _, row in open_table.iterrows():
        phrase = open_phrase(row)
        rows.append({"layer": row["layer"], "neuron": int(row["neuron"]), "method": "open", "function": "pos",
                     "explanation": phrase, "status": "ok" if phrase else "no open concept"})
    return rows


def explanation_rows(closed: pd.DataFrame, icl: pd.DataFrame, open_table: pd.DataFrame) -> pd.DataFrame:
    rows = closed_rows(closed) + icl_rows(icl) + open_rows(open_table)
    return pd.DataFrame(rows, columns=COLUMNS)


def explanations_to_simulate(rows: pd.DataFrame) -> list[str]:
    """Every distinct explanation and the constant baseline, sorted: a simulation depends only on the text
    and the clips, so each is simulated once however many neurons share it."""
    texts = set(rows.loc[rows["status"] == "ok", "explanation"]) | {CONSTANT_EXPLANATION}
    return sorted(texts)


def random_other(rows: pd.DataFrame, seed: int) -> pd.Series:
    """For every scored row, the explanation of another neuron of the same layer, method and function (a
    seeded derangement of the group; "" where the group has one explanation only)."""
    other = pd.Series("", index=rows.index, dtype=object)
    scored = rows[rows["status"] == "ok"]
    for key, group in scored.groupby(["layer", "method", "function"], sort=True):
        if len(group) < 2:
            continue
        rng = np.random.default_rng([seed, *"/".join(map(str, key)).encode()])
        order = rng.permutation(len(group))
        shifted = np.roll(order, 1)  # a cycle through a random order: nobody keeps their own
        texts = group["explanation"].to_numpy()
        other.loc[group.index[order]] = texts[shifted]
    return other
