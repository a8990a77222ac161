"""Cost of Study 1 (latent disentanglement) from the benchmark TSVs of finished workflow runs.

For each run directory (a Snakemake working directory), reads ``results/benchmarks/<rule>/...tsv`` of the
study-1 rules (and extract_activations, for context), the clip count from the dataset manifest, the flow's
epochs run from ``flow/curve.csv``, and the disk used by ``results/activations`` and ``results/latent``.
project_layer is summed over its layers for time; its peak memory is the max over layers. Nothing is run.

    .venv/bin/python bench/study1.py --run 1x=. --run 10x=/tmp/bench-study1-10x [--out bench/out/study1.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RULES = ["extract_activations", "latent_split", "project_layer", "decode_layers", "train_flow", "figure1",
         "transfer_edit", "transfer_continue", "transfer_statistics"]
CONTEXT = {"extract_activations"}   # reported, but not part of the study-1 total


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", metavar="LABEL=DIR",
                        help="a finished run: label and Snakemake working directory (repeatable; default 1x=repo)")
    parser.add_argument("--model", default="yamnet")
    parser.add_argument("--dataset", default="maas-synth")
    parser.add_argument("--out", default=str(REPO / "bench/out/study1.json"))
    args = parser.parse_args(argv)
    runs = args.run or [f"1x={REPO}"]
    if any("=" not in run for run in runs):
        parser.error("--run takes LABEL=DIR")
    args.runs = dict(run.split("=", 1) for run in runs)
    return args


def read_table(path: Path) -> pd.DataFrame:
    """A CSV whose first line may be a ``# config: {...}`` record."""
    with open(path) as file:
        skip = 1 if file.readline().startswith("# config:") else 0
    return pd.read_csv(path, skiprows=skip)


def config_line(path: Path) -> dict | None:
    with open(path) as file:
        line = file.readline()
    return json.loads(line.split(":", 1)[1]) if line.startswith("# config:") else None


def benchmark(path: Path) -> dict:
    """One job's benchmark row (the mean if Snakemake repeated it)."""
    row = pd.read_csv(path, sep="\t").drop(columns=["h:m:s"]).mean()
    return {"seconds": float(row["s"]), "max_rss_mb": float(row["max_rss"]), "cpu_seconds": float(row["cpu_time"]),
            "mean_load": float(row["mean_load"]), "io_out_mb": float(row["io_out"])}


def disk_usage(path: Path) -> dict:
    """Allocated bytes (as du counts them) and apparent size of a folder."""
    allocated = apparent = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            allocated, apparent = allocated + stat.st_blocks * 512, apparent + stat.st_size
    return {"du_mb": allocated / 2**20, "apparent_mb": apparent / 2**20, "exists": path.exists()}


def measure(root: Path, model: str, dataset: str) -> dict:
    bench, latent = root / "results/benchmarks", root / "results/latent" / model / dataset
    manifest = root / "results/datasets" / dataset / "manifest.csv"
    rules, missing = {}, []
    for rule in RULES:
        if rule == "project_layer":
            files = sorted((bench / rule / model / dataset).glob("*.tsv"))
            logs = {f.stem for f in (root / "results/logs" / rule / model / dataset).glob("*.log")}
            missing += [f"{rule}:{layer} (failed)" for layer in sorted(logs - {f.stem for f in files})]
            if not files:
                missing += [] if logs else [rule]
                continue
            layers = {f.stem: benchmark(f) for f in files}
            peak = max(layers, key=lambda layer: layers[layer]["max_rss_mb"])
            rules[rule] = {"seconds": sum(v["seconds"] for v in layers.values()),
                           "max_rss_mb": layers[peak]["max_rss_mb"], "peak_layer": peak,
                           "cpu_seconds": sum(v["cpu_seconds"] for v in layers.values()),
                           "layers_done": len(layers), "per_layer": layers}
            continue
        path = bench / rule / model / f"{dataset}.tsv"
        if path.exists():
            rules[rule] = benchmark(path)
        else:   # a log without a benchmark: the job started and did not finish
            failed = (root / "results/logs" / rule / model / f"{dataset}.log").exists()
            missing.append(f"{rule} (failed)" if failed else rule)
    curve = latent / "flow/curve.csv"
    flow = None
    if curve.exists():
        record = config_line(curve) or {}
        flow = {"epochs_run": len(read_table(curve)), "epochs_max": record.get("epochs"),
                "patience": record.get("patience"), "layer": record.get("layer")}
        if "train_flow" in rules:
            rules["train_flow"]["epochs"] = flow["epochs_run"]
            rules["train_flow"]["seconds_per_epoch"] = rules["train_flow"]["seconds"] / flow["epochs_run"]
    study = [r for r in rules if r not in CONTEXT]
    return {
        "dir": str(root),
        "clips": len(read_table(manifest)) if manifest.exists() else None,
        "dataset_config": config_line(manifest) if manifest.exists() else None,
        "flow": flow,
        "rules": rules,
        "missing_benchmarks": missing,
        "study1_job_seconds": sum(rules[r]["seconds"] for r in study),
        "study1_peak_rss_mb": max((rules[r]["max_rss_mb"] for r in study), default=None),
        "disk": {"results/activations": disk_usage(root / "results/activations"),
                 "results/latent": disk_usage(root / "results/latent")},
    }


def git_state() -> dict:
    def git(*command):
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "modified": git("status", "--short", "--untracked-files=no").splitlines()}


def table(runs: dict) -> str:
    labels = list(runs)
    first, last = runs[labels[0]], runs[labels[-1]]
    ratio = len(labels) > 1

    def num(value, fmt="{:.1f}"):
        return "—" if value is None else fmt.format(value)

    header = ["rule"] + [f"{label} {what}" for label in labels for what in ("s", "peak RSS MB")]
    header += [f"s {labels[-1]}/{labels[0]}", f"RSS {labels[-1]}/{labels[0]}"] if ratio else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name, values, ratios):
        lines.append("| " + " | ".join([name, *values, *(ratios if ratio else [])]) + " |")

    for rule in RULES:
        got = [r["rules"].get(rule) for r in runs.values()]
        name = rule + (" (context)" if rule in CONTEXT else "")
        if rule == "project_layer":
            name += " (sum of layers; RSS: max layer)"
        values = [v for g in got for v in (num(g and g["seconds"]), num(g and g["max_rss_mb"], "{:.0f}"))]
        a, b = first["rules"].get(rule), last["rules"].get(rule)
        ratios = ([f"{b['seconds'] / a['seconds']:.1f}x", f"{b['max_rss_mb'] / a['max_rss_mb']:.1f}x"]
                  if a and b else ["—", "—"])
        if rule == "project_layer":
            name += ": " + ", ".join(f"{g['layers_done'] if g else 0} layers" for g in got)
            if a and b and set(a["per_layer"]) != set(b["per_layer"]):   # compare the layers both runs have
                common = set(a["per_layer"]) & set(b["per_layer"])
                s_a, s_b = (sum(g["per_layer"][layer][key] for layer in common) for g, key in
                            ((a, "seconds"), (b, "seconds")))
                m_a, m_b = (max(g["per_layer"][layer]["max_rss_mb"] for layer in common) for g in (a, b))
                ratios = [f"{s_b / s_a:.1f}x ({len(common)} common layers)", f"{m_b / m_a:.1f}x (same layers)"]
        row(name, values, ratios)
        if rule == "train_flow":
            values = [v for g in got for v in (num(g and g.get("seconds_per_epoch"), "{:.3f}"),
                                                 f"{g['epochs']} epochs" if g and "epochs" in g else "—")]
            spe = [g and g.get("seconds_per_epoch") for g in (a, b)]
            row("train_flow, s per epoch", values, [f"{spe[1] / spe[0]:.1f}x" if all(spe) else "—", ""])
    def partial(r):   # a lower bound when some study-1 job has no benchmark
        return "≥" if r["missing_benchmarks"] else ""

    totals = [v for r in runs.values() for v in (partial(r) + num(r["study1_job_seconds"]),
                                                  partial(r) + num(r["study1_peak_rss_mb"], "{:.0f}"))]
    complete = not first["missing_benchmarks"] and not last["missing_benchmarks"]
    row("**study 1 total** (sum of job seconds; max RSS)", totals,
        [f"{last['study1_job_seconds'] / first['study1_job_seconds']:.1f}x",
         f"{last['study1_peak_rss_mb'] / first['study1_peak_rss_mb']:.1f}x"]
        if complete else ["— (incomplete run)", "—"])
    lines.append("")
    lines.append("| run | clips | flow epochs run (max) | du results/activations | du results/latent | no benchmark (failed: log but no TSV) |")
    lines.append("|---|---|---|---|---|---|")
    for label, r in runs.items():
        flow = r["flow"] or {}
        disk = r["disk"]
        lines.append(f"| {label} | {r['clips']} | {flow.get('epochs_run', '—')} ({flow.get('epochs_max', '—')}) | "
                     f"{disk['results/activations']['du_mb']:.0f} MB | {disk['results/latent']['du_mb']:.0f} MB | "
                     f"{', '.join(r['missing_benchmarks']) or 'none'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    runs = {label: measure(Path(d).resolve(), args.model, args.dataset) for label, d in args.runs.items()}
    result = {"model": args.model, "dataset": args.dataset, "rules": RULES, "git": git_state(), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(runs))


if __name__ == "__main__":
    main()
