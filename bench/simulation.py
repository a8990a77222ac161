"""Simulation scoring with the default LLM (Gemma 3 270M): the two layouts side by side, and their pace.

On oracle captions ("A recording of <class>.") of four ESC-10 classes, each class name is simulated as an
explanation on every caption, in two layouts:

- ``one_at_a_time`` (the workflow's): the default few-shot prefix, evaluated once, then one question per clip
  (dissect.llm.prompts.simulation and simulation_line);
- ``all_at_once`` (Bills et al.'s default): one prompt per explanation with every clip on a line of its own,
  ``caption<TAB>unknown``, after two few-shot neurons whose lines show their scores; the prediction for a clip
  is read at its tab.

For each layout it prints the mean expected score of the matching captions minus that of the others (the
explanation's "margin": 0 means the model ignores the explanation), the digits' share of the probability, and
the seconds per clip. Usage: ``python bench/simulation.py [--repeats 3]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ["dog", "rain", "rooster", "crying baby"]
ALL_AT_ONCE_PREFIX = (
    "We're studying neurons in a network that listens to sounds. Each neuron responds to some particular kind of "
    "sound. Read the summary of what a neuron responds to, and predict how strongly it fires on each sound, from "
    "0 (not at all) to 9 (most strongly).\n\n"
    "Neuron 1\nExplanation: dogs barking\nActivations:\n<start>\nA dog barks loudly twice.\t9\nRain falls on a "
    "roof.\t0\nA small dog yaps.\t8\nA car engine idles.\t1\n<end>\n\n"
    "Neuron 2\nExplanation: rain\nActivations:\n<start>\nA dog barks loudly twice.\t0\nHeavy rain on a tin "
    "roof.\t9\nWater drips.\t5\nBirds chirp.\t0\n<end>\n\n"
    "Neuron 3\nExplanation: {explanation}\nActivations:\n<start>\n")


def expected(model, position: int, digits: list[int]) -> tuple[float, float]:
    from audioprobe.dissect.simulation import expected_value

    return expected_value(model.scores[position], digits)


def one_at_a_time(model, tokens, digits, prompts, explanation, captions):
    from audioprobe.dissect.simulation import clip_line

    model.reset()
    model.eval([model.token_bos()] + tokens(prompts["simulation"]))
    start, out = model.n_tokens, []
    for caption in captions:
        model.n_tokens = start
        model.eval(tokens(clip_line(prompts["simulation_line"], explanation, caption)))
        out.append(expected(model, model.n_tokens - 1, digits))
    return out


def all_at_once(model, tokens, digits, prompts, explanation, captions):
    sequence = [model.token_bos()] + tokens(ALL_AT_ONCE_PREFIX.replace("{explanation}", explanation))
    tabs = []
    for caption in captions:
        sequence += tokens(caption)
        tabs.append(len(sequence))
        sequence += tokens("\t") + tokens("unknown") + tokens("\n")
    model.reset()
    model.eval(sequence)
    return [expected(model, tab, digits) for tab in tabs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each figure is the fastest round's")
    args = parser.parse_args()
    from audioprobe.config import fill_defaults, load_schema
    from audioprobe.llm import default_gguf, load

    prompts = fill_defaults({"dissect": {}}, load_schema())["dissect"]["llm"]["prompts"]
    with tempfile.TemporaryDirectory() as folder:
        model = load(default_gguf(Path(folder)), seed=0, context=1024, threads=2, logits_all=True)

        def tokens(text):
            return model.tokenize(text.encode(), add_bos=False, special=False)

        digits = [tokens(str(d))[0] for d in range(10)]
        captions = [f"A recording of {c}." for c in CLASSES]
        results = {}
        for name, layout in (("one_at_a_time", one_at_a_time), ("all_at_once", all_at_once)):
            fastest = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                table = {e: layout(model, tokens, digits, prompts, e, captions) for e in CLASSES}
                fastest = min(fastest, time.perf_counter() - start)
            values = np.array([[value for value, _ in table[e]] for e in CLASSES])
            mass = np.array([[m for _, m in table[e]] for e in CLASSES])
            matched = np.diag(values)
            others = (values.sum(axis=1) - matched) / (len(CLASSES) - 1)
            results[name] = {"margin_mean": round(float((matched - others).mean()), 3),
                             "margins": [round(float(v), 3) for v in matched - others],
                             "matching_is_highest": int((values.argmax(axis=1) == np.arange(len(CLASSES))).sum()),
                             "digit_mass": round(float(mass.mean()), 3),
                             "seconds_per_clip": round(fastest / values.size, 3)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
