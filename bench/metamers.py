"""Benchmark of metamer synthesis: the cochleagram at the input rate against the reduced envelope rate, and all
(sound, layer) pairs in one batch against one metamer at a time.

For each network (the conv2d and grouped_temporal keyword classifiers on the cochleagram front end, with
random weights: speed does not depend on training; and YAMNet layers 2, 8 and 14), the same target sounds
are synthesised with the same settings:

- batched: one ``synthesise`` call for every sound x every metamer layer of the network (as the workflow),
  once per ``--sounds`` count (4 and 16 sounds: 20 and 80 rows for the keyword networks);
- one at a time: one ``synthesise`` call per (sound, layer) for the first count, each with a forward pass that
  stops at its layer (``--no-one-at-a-time`` skips it).

The keyword networks run twice in the same process, side by side: with the cochleagram's envelopes at the
input rate (``envelope_oversampling: null``, Feather et al.'s computation, the front end before issue 13) and
at the reduced rate (the default). Same targets, weights, seeds and iterations.

Each network runs in a fresh process, as each is a separate workflow job (YAMNet also fixes TF's thread
pools when it loads). Tracing and XLA compilation are excluded: ``synthesise`` logs a checkpoint every
``--checkpoint`` steps, and the per-step time is the time between the first checkpoint and the last one (the
first steps, which trace the step function and compile the front end, fall before the first checkpoint); the
process's CPU seconds over the same steps are kept too, as a figure less sensitive to other load. The whole
call's wall time is kept too: the rest (tracing, compilation, the targets' forward pass) is reported as
overhead per call.

``--validity`` instead runs the workflow's own Study 2 steps in a scratch folder (commands-synth generated
with config.yaml's settings, its manifest and split, the keyword waveforms, one training per keyword network
with the input-rate front end, targets per word, synthesis and validation), synthesising and validating the
same targets with both front ends, and prints passed/metamers and the median Spearman rho per layer.

``--oversampling 4 8 16 32`` instead sweeps ``envelope_oversampling``: per value, the reduced rate's largest
deviation from ``cochleagram_reference`` relative to the clip's peak (before compression, as the tests bound it,
and after it where audible) on white noise, a Speech Commands clip and a 1-kHz tone, and conv2d's seconds per
metamer per 1,000 iterations (batched, the first ``--sounds`` count), the input rate measured in the same run.

    .venv/bin/python bench/metamers.py [--iterations 50] [--sounds 4 16] [--out bench/out/metamers.json]
    .venv/bin/python bench/metamers.py --validity [--validity-per-word 1] [--out bench/out/metamers-validity.json]
    .venv/bin/python bench/metamers.py --oversampling 4 8 16 32 [--out bench/out/metamers-oversampling.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = ["yes", "no", "up", "down", "left", "right", "stop", "go"]
SAMPLE_RATE = 16000
FRONTEND = {"kind": "cochleagram", "n": 40, "sample_factor": 1}  # config.yaml's metamers.frontend
#: the side by side: the envelopes at the input rate (before issue 13) and at the reduced rate (the default)
FRONTENDS = {"input rate": {**FRONTEND, "envelope_oversampling": None}, "reduced rate": FRONTEND}
KEYWORD_ARCHS = ("conv2d", "grouped_temporal")
YAMNET = {"model": "yamnet", "model_config": {"kind": "yamnet"}, "layers": ["layer2", "layer8", "layer14"]}
N_CLASSES = 8
SPEECH = Path("/work/shared/data/speech_commands/speech_commands_v0.01/yes/439c84f4_nohash_1.wav")
log = logging.getLogger("bench.metamers")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="synthesis steps per call (both ways)")
    parser.add_argument("--sounds", type=int, nargs="+", default=[4, 16],
                        help="target sounds (espeak-ng keywords, one second) of each batched run; one at a time "
                             "uses the first count")
    parser.add_argument("--one-at-a-time", action=argparse.BooleanOptionalAction, default=True,
                        help="also one synthesise call per (sound, layer)")
    parser.add_argument("--frontends", nargs="+", default=list(FRONTENDS), choices=list(FRONTENDS),
                        help="cochleagram variants the keyword networks run with")
    parser.add_argument("--checkpoint", type=int, default=5,
                        help="log_every of synthesise: steps before the first checkpoint (tracing) are not timed")
    parser.add_argument("--networks", nargs="+", default=[*KEYWORD_ARCHS, "yamnet"],
                        choices=[*KEYWORD_ARCHS, "yamnet"])
    parser.add_argument("--threads", type=int, default=2, help="TF intra-op threads (the workflow rule uses 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="/work/shared/models/yamnet/yamnet.tflite")
    parser.add_argument("--pass-rates", default=str(REPO / "results/metamers/commands-synth/pass_rates.csv"),
                        help="a workflow run's pass rates, read (never written) and included if present")
    parser.add_argument("--out", default=str(REPO / "bench/out/metamers.json"))
    parser.add_argument("--validity", action="store_true",
                        help="pass rates with both front ends through the workflow's steps (no timing table)")
    parser.add_argument("--validity-per-word", type=int, default=1, help="--validity: target sounds per word")
    parser.add_argument("--validity-iterations", type=int, default=300, help="--validity: synthesis iterations")
    parser.add_argument("--oversampling", type=float, nargs="+", default=None,
                        help="sweep envelope_oversampling: accuracy against the reference and conv2d's speed")
    parser.add_argument("--speech", default=str(SPEECH), help="--oversampling: the real speech clip (WAV)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one network, in a fresh process
    args = parser.parse_args(argv)
    if args.validity and args.out == parser.get_default("out"):
        args.out = str(REPO / "bench/out/metamers-validity.json")
    if args.oversampling and args.out == parser.get_default("out"):
        args.out = str(REPO / "bench/out/metamers-oversampling.json")
    if args.iterations < 2 * args.checkpoint:
        parser.error("--iterations must be at least twice --checkpoint (two checkpoints are timed)")
    return args


# --- targets ----------------------------------------------------------------------------------------------

def make_targets(count: int, seed: int) -> tuple[np.ndarray, list[str], str]:
    """``count`` one-second 16-kHz espeak-ng keywords (commands-synth defaults), or tones if espeak-ng fails."""
    from audioprobe.datasets import commands_synth

    words = [WORDS[i % len(WORDS)] for i in range(count)]
    try:
        clips = [commands_synth.utterance(word, i // len(WORDS), seed=seed, voices=commands_synth.DEFAULT_VOICES,
                                          variants=commands_synth.DEFAULT_VARIANTS, pitch_range=(30, 70),
                                          rate_range=(130, 210), snr_db_range=(15, 40), sample_rate=SAMPLE_RATE)[0]
                 for i, word in enumerate(words)]
        return np.stack(clips).astype(np.float32), words, "espeak-ng (commands_synth.utterance)"
    except Exception as error:  # noqa: BLE001 - any espeak failure: fall back to tones
        log.warning("espeak-ng failed (%s): using tones", error)
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        tones = [0.1 * np.sin(2 * np.pi * (220 * 2 ** (i / 4)) * t) * np.hanning(SAMPLE_RATE) for i in range(count)]
        return np.stack(tones).astype(np.float32), [f"tone{i}" for i in range(count)], "tones"


# --- networks ---------------------------------------------------------------------------------------------

class KeywordStandIn:
    """Front end + classifier composed like ``KeywordNetwork.forward``, for the given layers."""

    def __init__(self, frontend, classifier, layers):
        from audioprobe.metamers import architectures

        self.frontend, self.layers = frontend, list(layers)
        self._outputs = {mode: architectures.layer_model(classifier, self.layers, relu_gradient=mode)
                         for mode in architectures.RELU_GRADIENTS}

    def forward(self, waveforms, relu_gradient="true"):
        return self._outputs[relu_gradient](self.frontend(waveforms), training=False)


def keyword_networks(arch: str, seed: int, frontend_config: dict):
    """(the network with every metamer layer, {layer: a network that stops at that layer})."""
    from audioprobe.metamers import architectures, frontends

    frontend = frontends.build_frontend(frontend_config)
    classifier = architectures.build_classifier(arch, frontend.output_shape(SAMPLE_RATE), N_CLASSES, seed=seed)
    layers = architectures.metamer_layers(classifier)
    return KeywordStandIn(frontend, classifier, layers), \
        {layer: KeywordStandIn(frontend, classifier, [layer]) for layer in layers}


def yamnet_networks(weights: str, threads: int):
    from audioprobe.metamers.networks import PretrainedNetwork

    whole = PretrainedNetwork({**YAMNET, "weights": weights}, threads)

    class Single:  # same model object, a forward pass that stops at one layer
        def __init__(self, layer):
            self.layers = [layer]
            self._forward = {mode: whole.model.differentiable([layer], relu_gradient=mode) for mode in ("fake", "true")}

        def forward(self, waveforms, relu_gradient="true"):
            return self._forward[relu_gradient](waveforms)

    return whole, {layer: Single(layer) for layer in whole.layers}


# --- timing -----------------------------------------------------------------------------------------------

class Checkpoints(logging.Handler):
    """Records the wall and CPU time of every 'step i/n' message ``synthesise`` logs."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: list[tuple[int, float, float]] = []

    def emit(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("step %d/%d") and record.args:
            self.times.append((int(record.args[0]), time.perf_counter(), time.process_time()))


def timed_synthesis(forward, targets, layers, iterations: int, checkpoint: int, seed: int) -> dict:
    from audioprobe.metamers.synthesis import Settings, synthesise

    handler = Checkpoints()
    logger = logging.getLogger(f"bench.metamers.{id(handler)}")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    cpu, started = time.process_time(), time.perf_counter()
    metamers, curve = synthesise(forward, targets, layers,
                                 Settings(iterations=iterations, log_every=checkpoint, seed=seed), log=logger)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    logger.removeHandler(handler)
    (first, t0, c0), (last, t1, c1) = handler.times[0], handler.times[-1]
    per_step = (t1 - t0) / (last - first)
    return {"rows": len(layers) * len(targets), "wall_seconds": wall, "cpu_seconds": cpu,
            "timed_steps": last - first, "timed_seconds": t1 - t0, "seconds_per_step": per_step,
            "cpu_seconds_per_step": (c1 - c0) / (last - first),
            "overhead_seconds": wall - per_step * iterations,  # tracing, compilation, targets' forward, setup
            "checkpoint_step_seconds": [(b - a) / (j - i) for (i, a, _), (j, b, _) in zip(handler.times, handler.times[1:])],
            "final_loss_median": {layer: float(np.nanmedian(curve[-1, i])) for i, layer in enumerate(layers)},
            "diverged_rows": int((~np.isfinite(metamers).all(axis=-1)).sum())}


def per_metamer_per_1k(run: dict, key: str = "seconds_per_step") -> float:
    return run[key] / run["rows"] * 1000


def bench_batched(name: str, whole, targets: np.ndarray, counts: list[int], args) -> dict:
    """One batched call per sound count: {str(count): timings} (string keys, as in the JSON)."""
    layers = list(whole.layers)
    runs = {}
    for count in counts:
        load = os.getloadavg()
        run = timed_synthesis(whole.forward, targets[:count], layers, args.iterations, args.checkpoint, args.seed)
        runs[str(count)] = {**run, "load_average_before": load, "load_average_after": os.getloadavg()}
        print(f"[{name}] batched, {count} sounds x {len(layers)} layers = {run['rows']} rows: "
              f"{per_metamer_per_1k(run):.2f} s per metamer per 1,000 iterations "
              f"(CPU {per_metamer_per_1k(run, 'cpu_seconds_per_step'):.2f}), load {load[0]:.1f}", flush=True)
    return runs


def bench_one_at_a_time(name: str, singles: dict, targets: np.ndarray, args) -> dict:
    """One call per (sound, layer), each with a forward pass that stops at its layer."""
    load = os.getloadavg()
    single = []
    for layer, network in singles.items():
        for index in range(len(targets)):
            run = timed_synthesis(network.forward, targets[index:index + 1], [layer], args.iterations,
                                  args.checkpoint, args.seed)
            single.append({"layer": layer, "sound": index, **run})
        mean = np.mean([r["seconds_per_step"] for r in single if r["layer"] == layer])
        print(f"[{name}]   one at a time, {layer}: {mean * 1000:.2f} s per metamer per 1,000 iterations", flush=True)
    return {"s_per_metamer_per_1k": float(np.mean([r["seconds_per_step"] for r in single])) * 1000,
            "cpu_s_per_metamer_per_1k": float(np.mean([r["cpu_seconds_per_step"] for r in single])) * 1000,
            "per_layer_s_per_metamer_per_1k": {layer: float(np.mean([r["seconds_per_step"] for r in single
                                                                      if r["layer"] == layer])) * 1000
                                                for layer in singles},
            "overhead_seconds_total": float(sum(r["overhead_seconds"] for r in single)),
            "overhead_seconds_per_call_median": float(np.median([r["overhead_seconds"] for r in single])),
            "wall_seconds": float(sum(r["wall_seconds"] for r in single)),
            "load_average_before": load, "load_average_after": os.getloadavg(), "calls": single}


def bench_network(name: str, frontend: str, whole, singles: dict, targets: np.ndarray, args) -> dict:
    label = f"{name}, {frontend}" if frontend else name
    result = {"network": name, "frontend": frontend, "layers": list(whole.layers),
              "batched": bench_batched(label, whole, targets, args.sounds, args)}
    if args.one_at_a_time:
        result["one_at_a_time"] = bench_one_at_a_time(label, singles, targets[:args.sounds[0]], args)
    return result


# --- machine, pass rates, report -------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def package_version(*names: str):
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_state() -> dict:
    def git(*command):
        result = subprocess.run(["git", *command], check=False, cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "changed_files": None if status is None else len(status.splitlines())}


def pass_rates(path: str):
    if not Path(path).exists():
        return None
    from audioprobe.io.atomic import read_csv

    table = read_csv(path)
    return {"path": path, "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(Path(path).stat().st_mtime)),
            "rows": table.to_dict(orient="records")}


def _pairs(results: list[dict]) -> list[tuple[str, dict, dict | None]]:
    """(network, its input-rate result or its only one, its reduced-rate result or None)."""
    by_network = {}
    for r in results:
        by_network.setdefault(r["network"], {})[r["frontend"]] = r
    return [(name, runs.get("input rate", runs.get(None, runs.get("reduced rate"))),
             runs.get("reduced rate") if "input rate" in runs else None) for name, runs in by_network.items()]


def _cell(value: float, cpu: float) -> str:
    return f"{value:.2f} ({cpu:.2f})"


def markdown(results: list[dict], args) -> str:
    """The batched table (a row per network x rows) and, when measured, the one-at-a-time table."""
    lines = [(f"{args.iterations} iterations per call (steps before the first checkpoint at {args.checkpoint} not "
              "timed); seconds per metamer per 1,000 iterations, wall (CPU of the process); speed-up = input rate / "
              "reduced rate (YAMNet has no cochleagram: its one run is in the first column)"), "",
             "| network | rows (sounds x layers) | envelopes at the input rate | reduced rate | speed-up (CPU) |",
             "|---|---|---|---|---|"]
    for name, full, reduced in _pairs(results):
        for count, run in full["batched"].items():
            rate = per_metamer_per_1k(run), per_metamer_per_1k(run, "cpu_seconds_per_step")
            row = f"| {name} | {run['rows']} ({count} x {len(full['layers'])}) | {_cell(*rate)} |"
            if reduced is None:
                lines.append(row + " – | – |")
                continue
            fast = reduced["batched"][count]
            fast_rate = per_metamer_per_1k(fast), per_metamer_per_1k(fast, "cpu_seconds_per_step")
            lines.append(row + f" {_cell(*fast_rate)} | {rate[0] / fast_rate[0]:.2f}x ({rate[1] / fast_rate[1]:.2f}x) |")
    if not args.one_at_a_time:
        return "\n".join(lines)
    lines += ["", (f"One (sound, layer) at a time, {args.sounds[0]} sounds; ratio = one at a time / batched (same "
                   "rows as the first batched row):"), "",
              "| network | front end | one at a time (CPU) | ratio | per layer | overhead s: batched / one-at-a-time total |",
              "|---|---|---|---|---|---|"]
    for r in results:
        single, batched = r["one_at_a_time"], r["batched"][str(args.sounds[0])]
        layers = ", ".join(f"{k} {v:.2f}" for k, v in single["per_layer_s_per_metamer_per_1k"].items())
        lines.append(f"| {r['network']} | {r['frontend'] or '–'} | "
                     f"{_cell(single['s_per_metamer_per_1k'], single['cpu_s_per_metamer_per_1k'])} | "
                     f"{single['s_per_metamer_per_1k'] / per_metamer_per_1k(batched):.2f} | {layers} | "
                     f"{batched['overhead_seconds']:.1f} / {single['overhead_seconds_total']:.1f} |")
    return "\n".join(lines)


def run_child(args) -> None:
    """One network, in this (fresh) process: its results (one per front end) as JSON to ``args.out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(1, args.threads))  # as load_network does
    targets, _, _ = make_targets(max(args.sounds), args.seed)
    if args.child == "yamnet":
        whole, singles = yamnet_networks(args.weights, args.threads)
        results = [bench_network(args.child, None, whole, singles, targets, args)]
    else:
        variants = sweep_frontends(args.oversampling) if args.oversampling else \
            {name: FRONTENDS[name] for name in args.frontends}
        results = [bench_network(args.child, name, *keyword_networks(args.child, args.seed, config), targets, args)
                   for name, config in variants.items()]
    Path(args.out).write_text(json.dumps(results, default=float))


# --- the reduced rate against the reference ----------------------------------------------------------------

def error_signals(targets: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """White noise, pink noise as synthesis starts from it (RMS 0.01), and the espeak-ng targets."""
    from audioprobe.metamers.synthesis import pink_noise

    white = np.random.default_rng(seed).standard_normal((1, targets.shape[1]))
    return {"white noise": (white / white.std() * 0.1).astype(np.float32),
            "pink noise": pink_noise(np.random.default_rng(seed), 1, targets.shape[1], 0.01),
            "espeak-ng speech": targets.astype(np.float32)}


def reference_errors(signals: dict[str, np.ndarray]) -> list[dict]:
    """Max |reduced rate - cochleagram_reference| over the signals of each kind, before the compression
    (power 1, offset 0) and after it: absolute, relative to the clip's peak, and the largest relative to a
    channel's own peak."""
    from audioprobe.metamers.frontends import build_frontend, cochleagram_reference

    rows = []
    for stage, extra in [("envelope (linear)", {"power": 1.0, "offset": 0.0}), ("cochleagram (compressed)", {})]:
        config = {**FRONTEND, **extra}
        params = {k: v for k, v in config.items() if k != "kind"}
        for name, waves in signals.items():
            reference, got = cochleagram_reference(waves, **params), build_frontend(config)(waves).numpy()
            error = np.abs(got - reference)
            rows.append({"stage": stage, "signal": name, "clips": len(waves), "max_abs": float(error.max()),
                         "max_relative_to_clip_peak": float((error.max(axis=(1, 2)) / reference.max(axis=(1, 2))).max()),
                         "max_relative_to_channel_peak": float((error.max(axis=2) / reference.max(axis=2)).max())})
    return rows


def errors_markdown(rows: list[dict]) -> str:
    lines = [f"Reduced rate against cochleagram_reference ({FRONTEND}, one-second clips):", "",
             "| stage | signal | clips | max abs error | relative to the clip's peak | relative to the channel's peak |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['signal']} | {r['clips']} | {r['max_abs']:.1e} | {r['max_relative_to_clip_peak']:.1e} | "
              f"{r['max_relative_to_channel_peak']:.1e} |" for r in rows]
    return "\n".join(lines)


# --- validity: the workflow's Study 2 steps with both front ends -------------------------------------------

def workflow_config() -> dict:
    """config.yaml with the schema's defaults filled in, as the workflow sees it."""
    import yaml

    from audioprobe import config as apconfig

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    return apconfig.fill_defaults(config, apconfig.load_schema())


def prepare_keyword_data(folder: Path, config: dict, log) -> dict:
    """generate_commands_synth, build_manifest, keyword_split and keyword_waveforms of the workflow, in
    ``folder``: {"waveforms": path, "split": path}."""
    from audioprobe.datasets.build import build_manifest
    from audioprobe.datasets.generate import generate_commands_synth
    from audioprobe.latent.steps import make_split
    from audioprobe.metamers.waveforms import keyword_waveforms

    settings, name = config["metamers"], config["metamers"]["dataset"]
    dataset = config["datasets"][name]
    audio, manifest = folder / "audio", folder / "manifest.csv"
    generate_commands_synth(audio, dataset, log=log)
    build_manifest(audio, dataset, manifest, folder / "rejected.csv", log=log, name=name)
    make_split(manifest, folder / "split.csv", [settings["label"]], settings["split"], section="metamers",
               labels_key="metamers.label", use="the keyword networks")
    keyword_waveforms(manifest, audio, folder / "waveforms.h5", clip_seconds=dataset["clip_seconds"],
                      label=settings["label"], log=log)
    return {"waveforms": folder / "waveforms.h5", "split": folder / "split.csv"}


def test_accuracy(network: dict, data: dict, trained, samples: int) -> float:
    """The trained classifier's accuracy on the test split, read through ``network``'s front end."""
    from audioprobe.latent.split import class_codes, split_masks
    from audioprobe.metamers.networks import KeywordNetwork
    from audioprobe.metamers.waveforms import read_waveforms

    waves = read_waveforms(data["waveforms"])
    test = split_masks(data["split"], waves["clip_id"])["test"]
    labels, _ = class_codes(waves["word"])
    net = KeywordNetwork(network, trained.weights, json.loads(Path(trained.evaluation).read_text()), samples)
    return float(np.mean(net.predict(waves["waveforms"][test]) == labels[test]))


def synthesise_and_validate(arch: str, network: dict, data: dict, trained, folder: Path, config: dict, args, log):
    """synthesise_metamers and validate_metamers of the workflow for one network: (validation table, seconds)."""
    from audioprobe.io.atomic import read_csv
    from audioprobe.metamers.synthesis_step import synthesise_step
    from audioprobe.metamers.validation_step import validate_step

    settings = config["metamers"]
    synthesis = {**settings["synthesis"], "iterations": args.validity_iterations}
    targets = {**settings["targets"], "per_word": args.validity_per_word}
    network_files = {"weights_path": trained.weights, "evaluation_path": trained.evaluation}
    started = time.perf_counter()
    synthesise_step(waveforms_path=data["waveforms"], split_path=data["split"], out_h5=folder / "metamers.h5",
                    network=network, synthesis_settings=synthesis, targets=targets, threads=args.threads,
                    **network_files, log=log)
    seconds = time.perf_counter() - started
    validate_step(metamers_path=folder / "metamers.h5", waveforms_path=data["waveforms"],
                  validation_csv=folder / "validation.csv", null_csv=folder / "null.csv", wav_dir=folder / "wavs",
                  figure_png=folder / "metamers.png", network=network, null=settings["null_distribution"],
                  net_name=arch, threads=args.threads, **network_files, log=log)
    return read_csv(folder / "validation.csv"), seconds


def cochleagram_difference(frontends: dict, waves: np.ndarray) -> float:
    """max |reduced - input rate| over the cochleagrams of ``waves``, relative to the input rate's maximum."""
    from audioprobe.metamers import frontends as fe
    from audioprobe.metamers.keyword_models import representations

    full, reduced = (representations(fe.build_frontend(frontends[name]), waves) for name in FRONTENDS)
    return float(np.abs(reduced - full).max() / np.abs(full).max())


def validity_table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["cell"] = [f"{r.passed}/{r.metamers} (ρ {r.median_spearman:.3f}, loss {r.median_final_loss:.1e})"
                     for r in frame.itertuples()]
    table = frame.pivot_table(index=["model", "layer"], columns="frontend", values="cell", aggfunc="first",
                              sort=False)
    return table[list(FRONTENDS)].reset_index().to_markdown(index=False)


def run_validity(args) -> dict:
    """Train each keyword network once (input-rate front end), then synthesise and validate the same targets
    with both front ends through the workflow's own steps; passed/metamers and median rho per layer."""
    import tempfile
    from types import SimpleNamespace

    from audioprobe.metamers.keyword_models import train_keyword_model_step
    from audioprobe.metamers.synthesis_step import read_metamers
    from audioprobe.metamers.validation import pass_rates as rates_of
    from audioprobe.metamers.waveforms import read_waveforms

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log.setLevel(logging.INFO)  # the steps' progress
    config = workflow_config()
    settings = config["metamers"]
    frontends = {name: {**settings["frontend"], **{k: v for k, v in variant.items() if k == "envelope_oversampling"}}
                 for name, variant in FRONTENDS.items()}
    load_before, started = os.getloadavg(), time.perf_counter()
    rows, details = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = prepare_keyword_data(folder, config, log)
        samples = read_waveforms(data["waveforms"])["waveforms"].shape[1]
        for arch in settings["architectures"]:
            model = {"arch": arch, "groups": settings["groups"], "sizes": settings["sizes"]}
            (folder / arch).mkdir()
            trained = SimpleNamespace(weights=folder / arch / "weights.weights.h5",
                                      history=folder / arch / "history.csv", evaluation=folder / arch / "evaluation.json")
            train_keyword_model_step(waveforms_path=data["waveforms"], split_path=data["split"],
                                     weights_h5=trained.weights, history_csv=trained.history,
                                     evaluation_json=trained.evaluation,
                                     model={**model, "frontend": frontends["input rate"]},
                                     training=settings["training"], threads=args.threads, log=log)
            details[arch] = {}
            for name, frontend in frontends.items():
                network = {"kind": "keyword", **model, "frontend": frontend}
                (folder / arch / name).mkdir()
                table, seconds = synthesise_and_validate(arch, network, data, trained, folder / arch / name, config,
                                                         args, log)
                losses = table.groupby(["model", "layer"], sort=False)["final_loss"].median()
                rows += rates_of(table).merge(losses.rename("median_final_loss").reset_index()).assign(
                    frontend=name).to_dict(orient="records")
                details[arch][name] = {"synthesis_seconds": seconds, "test_accuracy": test_accuracy(network, data,
                                                                                                     trained, samples),
                                       "validation": table.to_dict(orient="records")}
                print(f"[{arch}, {name}] synthesis {seconds:.0f} s; "
                      f"test accuracy {details[arch][name]['test_accuracy']:.3f}", flush=True)
            made = read_metamers(folder / arch / "input rate" / "metamers.h5")
            details[arch]["cochleagram_difference_on_targets"] = cochleagram_difference(frontends, made["targets"])
    table = validity_table(rows)
    load_after = os.getloadavg()
    print(f"\n{args.validity_per_word} target(s) per word, {args.validity_iterations} iterations; passed/metamers "
          "(median Spearman rho between metamer and natural activations at the layer, median final loss):\n")
    print(table)
    for arch, runs in details.items():
        accuracy = ", ".join(f"{name} {runs[name]['test_accuracy']:.3f}" for name in frontends)
        seconds = ", ".join(f"{name} {runs[name]['synthesis_seconds']:.0f} s" for name in frontends)
        print(f"{arch}: test accuracy {accuracy}; synthesis {seconds}; the cochleagrams of the targets differ by "
              f"at most {runs['cochleagram_difference_on_targets']:.1e} of their peak")
    print(f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{time.perf_counter() - started:.0f} s in all")
    return {"settings": {"per_word": args.validity_per_word, "iterations": args.validity_iterations,
                         "frontends": frontends, "metamers": settings,
                         "trained_with": "input rate", "dataset": config["datasets"][settings["dataset"]]},
            "machine": machine(load_before, load_after), "git": git_state(),
            "total_seconds": time.perf_counter() - started, "pass_rates": rows, "table": table, "details": details}


def machine(load_before, load_after) -> dict:
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu_model(),
            "python": platform.python_version(), "tensorflow": package_version("tensorflow", "tensorflow-cpu"),
            "keras": package_version("keras"), "platform": platform.platform(),
            "load_average_before": load_before, "load_average_after": load_after}


def child_command(name: str, out: Path, args) -> list[str]:
    options = [f"--{key}={getattr(args, key)}" for key in ("iterations", "checkpoint", "threads", "seed", "weights")]
    sweep = ["--oversampling", *map(str, args.oversampling)] if args.oversampling else []
    return [sys.executable, __file__, "--child", name, "--out", str(out), *options, *sweep,
            "--sounds", *map(str, args.sounds), "--frontends", *args.frontends,
            "--one-at-a-time" if args.one_at_a_time else "--no-one-at-a-time"]


def print_pass_rates(rates, path) -> None:
    if not rates:
        print(f"\nno pass rates at {path} (yet)")
        return
    import pandas as pd

    frame = pd.DataFrame(rates["rows"])
    columns = [c for c in ("model", "layer", "metamers", "passed", "diverged", "pass_rate") if c in frame]
    print(f"\npass rates of the workflow run ({rates['path']}, written {rates['modified']}):\n")
    print(frame[columns].to_markdown(index=False, floatfmt=".2f"))


def run_speed(args) -> dict:
    import tempfile

    load_before = os.getloadavg()
    started = time.perf_counter()
    targets, words, source = make_targets(max(args.sounds), args.seed)
    print(f"targets: {len(targets)} x {targets.shape[1]} samples from {source} ({', '.join(words)}); "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.networks:
            child_out = Path(folder) / f"{name}.json"
            subprocess.run(child_command(name, child_out, args), check=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            results.extend(json.loads(child_out.read_text()))
    load_after = os.getloadavg()
    rates = pass_rates(args.pass_rates)
    table = markdown(results, args)
    keyword = any(name in KEYWORD_ARCHS for name in args.networks)
    errors = reference_errors(error_signals(targets[:args.sounds[0]], args.seed)) if keyword else None
    print()
    print(table)
    if errors:
        print()
        print(errors_markdown(errors))
    print(f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print_pass_rates(rates, args.pass_rates)
    return {
        "settings": {"iterations": args.iterations, "sounds": args.sounds, "checkpoint": args.checkpoint,
                     "threads": args.threads, "seed": args.seed, "networks": args.networks,
                     "frontends": {name: FRONTENDS[name] for name in args.frontends},
                     "n_classes": N_CLASSES, "keyword_weights": "random (build_classifier, seed)",
                     "yamnet": {**YAMNET, "weights": args.weights}, "targets": source, "words": words,
                     "one_at_a_time": args.one_at_a_time,
                     "one_at_a_time_forward": "a forward pass that stops at the metamer's layer",
                     "timing": "seconds per step between the first and the last synthesise checkpoint (wall, and "
                               "the process's CPU seconds); overhead = call wall time - seconds per step x iterations"},
        "machine": machine(load_before, load_after),
        "git": git_state(),
        "total_seconds": time.perf_counter() - started,
        "results": results,
        "table": table,
        "reference_errors": errors,
        "pass_rates": rates,
    }


# --- envelope_oversampling: accuracy against the reference and speed ----------------------------------------

def sweep_frontends(values) -> dict[str, dict]:
    """The input rate and the reduced rate at each envelope_oversampling in ``values``."""
    return {"input rate": FRONTENDS["input rate"],
            **{f"oversampling {value:g}": {**FRONTEND, "envelope_oversampling": value} for value in values}}


def sweep_signals(speech_path: str) -> dict[str, np.ndarray]:
    """One second each at 16 kHz: white noise (RMS 0.1), a Speech Commands clip (padded to one second) and a
    1-kHz tone (RMS 0.1)."""
    from audioprobe.io.audio import fit_length, read

    noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE)
    speech, rate = read(speech_path)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{speech_path} is at {rate} Hz, not {SAMPLE_RATE}")
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return {"noise": (noise / noise.std() * 0.1)[None].astype(np.float32),
            "speech": fit_length(np.asarray(speech, np.float32).reshape(len(speech), -1)[:, 0], SAMPLE_RATE)[None],
            "tone": (0.1 * np.sqrt(2) * np.sin(2 * np.pi * 1000.0 * t))[None].astype(np.float32)}


def deviation(config: dict, waves: np.ndarray) -> dict:
    """max |front end - cochleagram_reference| relative to the reference's peak: before compression (power 1,
    offset 0; the tests' 1e-5 bound) and after it, over the bins above 1e-4 of the linear peak."""
    from audioprobe.metamers.frontends import build_frontend, cochleagram_reference

    linear_config = {**config, "power": 1.0, "offset": 0.0}
    params, linear_params = ({k: v for k, v in c.items() if k != "kind"} for c in (config, linear_config))
    linear_ref, ref = cochleagram_reference(waves, **linear_params), cochleagram_reference(waves, **params)
    linear, got = build_frontend(linear_config)(waves).numpy(), build_frontend(config)(waves).numpy()
    audible = linear_ref >= 1e-4 * linear_ref.max()
    return {"linear": float(np.abs(linear - linear_ref).max() / linear_ref.max()),
            "compressed_audible": float(np.abs(got - ref)[audible].max() / ref.max())}


def envelope_share(config: dict) -> float:
    """Envelope samples computed per channel, as a fraction of the input rate's."""
    from audioprobe.metamers.frontends import build_frontend

    return float(np.mean(1.0 / build_frontend(config).envelope_strides(SAMPLE_RATE)))


def sweep_markdown(rows: list[dict], args) -> str:
    title = (f"conv2d, {rows[0]['rows']} metamers per batch, {args.iterations} iterations; deviation = "
             "max |front end - cochleagram_reference| / the reference's peak, before compression (after it, "
             "where audible)")
    header = ("| envelope_oversampling | envelope samples | noise | speech | tone | s per metamer per 1k (CPU) | "
              "speed-up | within 1e-5 |")
    lines = [title, "", header, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        errors = " | ".join(f"{r['deviation'][name]['linear']:.1e} ({r['deviation'][name]['compressed_audible']:.1e})"
                            for name in ("noise", "speech", "tone"))
        within = all(r["deviation"][name]["linear"] <= 1e-5 for name in ("noise", "speech", "tone"))
        lines.append(f"| {r['frontend']} | {r['envelope_share']:.3f} | {errors} | {_cell(r['s'], r['cpu_s'])} | "
                     f"{r['speedup']:.2f}x | {'yes' if within else 'no'} |")
    return "\n".join(lines)


def run_oversampling(args) -> dict:
    import tempfile

    load_before, started = os.getloadavg(), time.perf_counter()
    variants = sweep_frontends(args.oversampling)
    with tempfile.TemporaryDirectory() as folder:
        child_out = Path(folder) / "conv2d.json"
        subprocess.run(child_command("conv2d", child_out, args), check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        speed = {r["frontend"]: r["batched"][str(args.sounds[0])] for r in json.loads(child_out.read_text())}
    load_after = os.getloadavg()
    signals = sweep_signals(args.speech)
    base = per_metamer_per_1k(speed["input rate"])
    rows = [{"frontend": name, "config": config, "rows": speed[name]["rows"],
             "s": per_metamer_per_1k(speed[name]), "cpu_s": per_metamer_per_1k(speed[name], "cpu_seconds_per_step"),
             "speedup": base / per_metamer_per_1k(speed[name]), "envelope_share": envelope_share(config),
             "deviation": {signal: deviation(config, waves) for signal, waves in signals.items()}}
            for name, config in variants.items()]
    table = sweep_markdown(rows, args)
    print(table)
    print(f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{time.perf_counter() - started:.0f} s in all")
    return {"settings": {"iterations": args.iterations, "sounds": args.sounds[0], "checkpoint": args.checkpoint,
                         "threads": args.threads, "seed": args.seed, "speech": args.speech, "frontends": variants},
            "machine": machine(load_before, load_after), "git": git_state(), "rows": rows, "speed": speed,
            "table": table}


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.child:
        return run_child(args)
    if args.oversampling:
        args.sounds, args.one_at_a_time = args.sounds[:1], False
        record = run_oversampling(args)
    else:
        record = run_validity(args) if args.validity else run_speed(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=float))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
