"""Per-stage cost of finished workflow runs, from Snakemake's benchmark files: every rule's summed job
seconds and largest peak memory, and the disk each results folder takes.

    .venv/bin/python bench/stages.py --run 1x=. [--run 10x=/tmp/run-10x ...] [--out bench/out/stages.json]

Job seconds are summed over a rule's jobs, not elapsed time: with --cores 2 two jobs can overlap, and the
figures include whatever else the machine was running (see each job's mean_load and cpu_seconds in the
JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("activations", "latent", "metamers", "dissect", "datasets", "cache")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                        help="a finished Snakemake working directory, with a name for the column")
    parser.add_argument("--out", default=str(REPO / "bench/out/stages.json"))
    return parser.parse_args(argv)


def rule_costs(run: Path) -> dict:
    """Per rule: jobs, summed seconds, largest peak RSS, and each job's mean load and CPU seconds. Snakemake
    writes NA for what it could not sample (a job shorter than its first sample): those are left out."""
    costs = {}
    for rule_dir in sorted(p for p in (run / "results/benchmarks").iterdir() if p.is_dir()):
        paths = sorted(rule_dir.rglob("*.tsv"))
        if not paths:
            continue
        rows = pd.concat([pd.read_csv(path, sep="\t").iloc[:1] for path in paths], ignore_index=True)
        numbers = {column: pd.to_numeric(rows[column], errors="coerce")
                   for column in ("s", "max_rss", "mean_load", "cpu_time")}
        rss = numbers["max_rss"].max()
        costs[rule_dir.name] = {"jobs": len(rows), "seconds": round(float(numbers["s"].sum()), 1),
                                "max_rss_mb": None if pd.isna(rss) else round(float(rss)),
                                "mean_load": _listed(numbers["mean_load"]), "cpu_seconds": _listed(numbers["cpu_time"])}
    return costs


def _listed(values) -> list:
    return [None if pd.isna(value) else round(float(value), 2) for value in values]


def disk_mb(run: Path) -> dict:
    sizes = {}
    for folder in FOLDERS:
        root = run / "results" / folder
        if root.is_dir():
            sizes[folder] = round(sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6, 1)
    return sizes


def markdown(records: dict) -> str:
    names = list(records)
    rules = list(dict.fromkeys(rule for record in records.values() for rule in record["rules"]))
    lines = ["| rule | " + " | ".join(f"{name}: jobs, s, peak MB" for name in names) + " |",
             "|---|" + "---|" * len(names)]
    for rule in rules:
        cells = []
        for name in names:
            cost = records[name]["rules"].get(rule)
            cells.append(f"{cost['jobs']}, {cost['seconds']:g}, {cost['max_rss_mb'] or 'NA'}" if cost else "–")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    for folder in FOLDERS:
        lines.append(f"| disk: results/{folder} (MB) | "
                     + " | ".join(str(records[name]["disk_mb"].get(folder, "–")) for name in names) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    records = {}
    for spec in args.run:
        name, _, folder = spec.partition("=")
        run = Path(folder or name).resolve()
        if not (run / "results/benchmarks").is_dir():
            raise SystemExit(f"{run} has no results/benchmarks: is it a finished workflow run?")
        records[name] = {"run": str(run), "rules": rule_costs(run), "disk_mb": disk_mb(run)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=2) + "\n")
    print(markdown(records))
    return records


if __name__ == "__main__":
    main()
