"""Benchmark of metamer synthesis: all (sound, layer) pairs in one batch against one metamer at a time.

For each network (the conv2d and grouped_temporal keyword classifiers on the cochleagram front end, with
random weights: speed does not depend on training; and YAMNet layers 2, 8 and 14), the same target sounds
are synthesised two ways with the same settings:

- batched: one ``synthesise`` call for every sound x every metamer layer of the network (as the workflow);
- one at a time: one ``synthesise`` call per (sound, layer), each with a forward pass that stops at its layer.

Each network runs in a fresh process, as each is a separate workflow job (YAMNet also fixes TF's thread
pools when it loads). Tracing and XLA compilation are excluded: ``synthesise`` logs a checkpoint every
``--checkpoint`` steps, and the per-step time is the time between the first checkpoint and the last one (the
first steps, which trace the step function and compile the front end, fall before the first checkpoint). The
whole call's wall time is kept too: the rest (tracing, compilation, the targets' forward pass) is reported as
overhead per call.

    .venv/bin/python bench/metamers.py [--iterations 50] [--sounds 4] [--out bench/out/metamers.json]
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
FRONTEND = {"kind": "cochleagram", "n": 40, "sample_factor": 1}
KEYWORD_ARCHS = ("conv2d", "grouped_temporal")
YAMNET = {"model": "yamnet", "model_config": {"kind": "yamnet"}, "layers": ["layer2", "layer8", "layer14"]}
N_CLASSES = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="synthesis steps per call (both ways)")
    parser.add_argument("--sounds", type=int, default=4, help="target sounds (espeak-ng keywords, one second)")
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
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one network, in a fresh process
    args = parser.parse_args(argv)
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
        logging.warning("espeak-ng failed (%s): using tones", error)
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


def keyword_networks(arch: str, seed: int):
    """(the network with every metamer layer, {layer: a network that stops at that layer})."""
    from audioprobe.metamers import architectures, frontends

    frontend = frontends.build_frontend(FRONTEND)
    classifier = architectures.build_classifier(arch, frontend.output_shape(SAMPLE_RATE), N_CLASSES, seed=seed)
    layers = architectures.metamer_layers(classifier)
    return KeywordStandIn(frontend, classifier, layers), \
        {layer: KeywordStandIn(frontend, classifier, [layer]) for layer in layers}


def yamnet_networks(weights: str, threads: int):
    from audioprobe.metamers.steps import PretrainedNetwork

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
    """Records the time of every 'step i/n' message ``synthesise`` logs."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: list[tuple[int, float]] = []

    def emit(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("step %d/%d") and record.args:
            self.times.append((int(record.args[0]), time.perf_counter()))


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
    (first, t0), (last, t1) = handler.times[0], handler.times[-1]
    per_step = (t1 - t0) / (last - first)
    return {"rows": len(layers) * len(targets), "wall_seconds": wall, "cpu_seconds": cpu,
            "timed_steps": last - first, "timed_seconds": t1 - t0, "seconds_per_step": per_step,
            "overhead_seconds": wall - per_step * iterations,  # tracing, compilation, targets' forward, setup
            "checkpoint_step_seconds": [(b - a) / (j - i) for (i, a), (j, b) in zip(handler.times, handler.times[1:])],
            "final_loss_median": {layer: float(np.nanmedian(curve[-1, i])) for i, layer in enumerate(layers)},
            "diverged_rows": int((~np.isfinite(metamers).all(axis=-1)).sum())}


def bench_network(name: str, whole, singles: dict, targets: np.ndarray, args) -> dict:
    layers = list(whole.layers)
    metamers = len(layers) * len(targets)
    load = {"before": os.getloadavg()}
    print(f"[{name}] batched: {len(targets)} sounds x {len(layers)} layers = {metamers} rows", flush=True)
    batched = timed_synthesis(whole.forward, targets, layers, args.iterations, args.checkpoint, args.seed)
    load["after_batched"] = os.getloadavg()
    print(f"[{name}]   {batched['seconds_per_step']:.4f} s/step, wall {batched['wall_seconds']:.1f} s", flush=True)
    single = []
    for layer in layers:
        for index in range(len(targets)):
            run = timed_synthesis(singles[layer].forward, targets[index:index + 1], [layer], args.iterations,
                                  args.checkpoint, args.seed)
            single.append({"layer": layer, "sound": index, **run})
        mean = np.mean([r["seconds_per_step"] for r in single if r["layer"] == layer])
        print(f"[{name}]   one at a time, {layer}: {mean:.4f} s/step per metamer", flush=True)
    load["after_one_at_a_time"] = os.getloadavg()
    batched_rate = batched["seconds_per_step"] / metamers * 1000
    single_rate = float(np.mean([r["seconds_per_step"] for r in single])) * 1000
    per_layer = {layer: float(np.mean([r["seconds_per_step"] for r in single if r["layer"] == layer])) * 1000
                 for layer in layers}
    return {"network": name, "layers": layers, "sounds": len(targets), "rows": metamers,
            "batched_s_per_metamer_per_1k": batched_rate, "one_at_a_time_s_per_metamer_per_1k": single_rate,
            "ratio_one_at_a_time_over_batched": single_rate / batched_rate,
            "one_at_a_time_per_layer_s_per_metamer_per_1k": per_layer,
            "overhead_seconds": {"batched_total": batched["overhead_seconds"],
                                 "one_at_a_time_total": float(sum(r["overhead_seconds"] for r in single)),
                                 "one_at_a_time_per_call_median": float(np.median([r["overhead_seconds"]
                                                                                   for r in single]))},
            "wall_seconds": {"batched": batched["wall_seconds"],
                             "one_at_a_time": float(sum(r["wall_seconds"] for r in single))},
            "cpu_seconds": {"batched": batched["cpu_seconds"],
                            "one_at_a_time": float(sum(r["cpu_seconds"] for r in single))},
            "load_average": load, "batched": batched, "one_at_a_time": single}


# --- machine, pass rates, report -------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
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
        result = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True)
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


def markdown(results: list[dict], args) -> str:
    lines = [f"{args.sounds} sounds, {args.iterations} iterations per call (steps before the first checkpoint at "
             f"{args.checkpoint} not timed); seconds per metamer per 1,000 iterations", "",
             "| network | rows (sounds x layers) | batched | one at a time | ratio | one at a time per layer | "
             "overhead s: batched / one-at-a-time total |", "|---|---|---|---|---|---|---|"]
    for r in results:
        layers = ", ".join(f"{k} {v:.2f}" for k, v in r["one_at_a_time_per_layer_s_per_metamer_per_1k"].items())
        lines.append(f"| {r['network']} | {r['rows']} ({r['sounds']} x {len(r['layers'])}) | "
                     f"{r['batched_s_per_metamer_per_1k']:.2f} | {r['one_at_a_time_s_per_metamer_per_1k']:.2f} | "
                     f"{r['ratio_one_at_a_time_over_batched']:.2f} | {layers} | "
                     f"{r['overhead_seconds']['batched_total']:.1f} / "
                     f"{r['overhead_seconds']['one_at_a_time_total']:.1f} |")
    return "\n".join(lines)


def run_child(args) -> None:
    """One network, in this (fresh) process: its result as JSON to ``args.out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(1, args.threads))  # as load_network does
    targets, _, _ = make_targets(args.sounds, args.seed)
    if args.child == "yamnet":
        whole, singles = yamnet_networks(args.weights, args.threads)
    else:
        whole, singles = keyword_networks(args.child, args.seed)
    Path(args.out).write_text(json.dumps(bench_network(args.child, whole, singles, targets, args), default=float))


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.child:
        return run_child(args)
    import tempfile

    load_before = os.getloadavg()
    started = time.perf_counter()
    targets, words, source = make_targets(args.sounds, args.seed)
    print(f"targets: {args.sounds} x {targets.shape[1]} samples from {source} ({', '.join(words)}); "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.networks:
            child_out = Path(folder) / f"{name}.json"
            command = [sys.executable, __file__, "--child", name, "--out", str(child_out),
                       *(f"--{key}={getattr(args, key)}" for key in ("iterations", "sounds", "checkpoint", "threads",
                                                                    "seed", "weights"))]
            subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            results.append(json.loads(child_out.read_text()))
    load_after = os.getloadavg()
    rates = pass_rates(args.pass_rates)
    table = markdown(results, args)
    print()
    print(table)
    print(f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
          f"{time.perf_counter() - started:.0f} s in all")
    if rates:
        import pandas as pd

        frame = pd.DataFrame(rates["rows"])
        columns = [c for c in ("model", "layer", "metamers", "passed", "diverged", "pass_rate") if c in frame]
        print(f"\npass rates of the workflow run ({rates['path']}, written {rates['modified']}):\n")
        print(frame[columns].to_markdown(index=False, floatfmt=".2f"))
    else:
        print(f"\nno pass rates at {args.pass_rates} (yet)")
    record = {
        "settings": {"iterations": args.iterations, "sounds": args.sounds, "checkpoint": args.checkpoint,
                     "threads": args.threads, "seed": args.seed, "networks": args.networks, "frontend": FRONTEND,
                     "n_classes": N_CLASSES, "keyword_weights": "random (build_classifier, seed)",
                     "yamnet": {**YAMNET, "weights": args.weights}, "targets": source, "words": words,
                     "one_at_a_time_forward": "a forward pass that stops at the metamer's layer",
                     "timing": "seconds per step between the first and the last synthesise checkpoint; "
                               "overhead = call wall time - seconds per step x iterations"},
        "machine": {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu_model(),
                    "python": platform.python_version(), "tensorflow": package_version("tensorflow", "tensorflow-cpu"),
                    "keras": package_version("keras"), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "git": git_state(),
        "total_seconds": time.perf_counter() - started,
        "results": results,
        "table": table,
        "pass_rates": rates,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=float))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
