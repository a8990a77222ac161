"""Per-stage cost of finished workflow runs, from Snakemake's benchmark files: every rule's summed job
seconds and largest peak memory, and the disk each results folder takes; and, from the run's Snakemake log
(the newest in ``.snakemake/log/``, or ``--log``), its wall time, how long one or both cores had a job, and
the chain of jobs that set the wall time.

    .venv/bin/python bench/stages.py --run 1x=. [--run 10x=/tmp/run-10x ...] [--out bench/out/stages.json]

Job seconds are summed over a rule's jobs, not elapsed time: with --cores 2 two jobs can overlap, and the
figures include whatever else the machine was running (see each job's mean_load and cpu_seconds in the
JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("activations", "latent", "metamers", "dissect", "datasets", "cache")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                        help="a finished Snakemake working directory, with a name for the column")
    parser.add_argument("--log", default=None, help="the Snakemake log to read the timeline from (default: each "
                        "run's newest .snakemake/log/*.snakemake.log; with several runs, give it per run by "
                        "running the script once per run)")
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


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
JOB = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def job_times(log: Path) -> list[dict]:
    """Each finished job of a Snakemake log: rule, start and end (seconds from the run's first job start).

    Snakemake stamps every job start and end to the second, so short jobs show 0 s here."""
    starts, jobs, stamp, rule = {}, [], None, None
    for line in log.read_text(errors="replace").splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif match := STARTED.match(line):
            rule = match.group(1)
        elif (match := JOB.match(line)) and rule:
            starts[match.group(1)] = (rule, stamp)
            rule = None
        elif match := FINISHED.match(line):
            name, began = starts.pop(match.group(1), (match.group(2), stamp))
            jobs.append({"rule": name, "start": began, "end": stamp})
    if not jobs:
        return []
    origin = min(job["start"] for job in jobs)
    return [{**job, "start": job["start"] - origin, "end": job["end"] - origin} for job in jobs]


def occupancy(jobs: list[dict]) -> dict:
    """Wall seconds with 0, 1, 2, ... jobs running, between the first start and the last end."""
    edges = sorted({0.0, *(job["start"] for job in jobs), *(job["end"] for job in jobs)})
    seconds: dict[int, float] = {}
    for left, right in itertools.pairwise(edges):
        running = sum(job["start"] <= left and job["end"] >= right for job in jobs)
        seconds[running] = seconds.get(running, 0.0) + right - left
    return {str(k): v for k, v in sorted(seconds.items())}


def chain(jobs: list[dict]) -> list[dict]:
    """The jobs that set the wall time: from the last job to end, step back each time to the job that ended
    last at or before the current one started (its likely blocker: an input or a free core)."""
    current = max(jobs, key=lambda job: job["end"])
    path = [current]
    while True:
        before = [job for job in jobs if job["end"] <= current["start"] and job is not current]
        if not before:
            return path[::-1]
        current = max(before, key=lambda job: (job["end"], job["end"] - job["start"]))
        path.append(current)


def timeline(run: Path, log: Path | None = None) -> dict:
    logs = sorted((run / ".snakemake/log").glob("*.snakemake.log")) if log is None else [log]
    if not logs:
        return {}
    jobs = job_times(logs[-1])
    if not jobs:
        return {"log": str(logs[-1]), "jobs": 0}
    return {"log": str(logs[-1]), "jobs": len(jobs), "wall_seconds": max(job["end"] for job in jobs),
            "seconds_with_jobs_running": occupancy(jobs),
            "chain": [{"rule": job["rule"], "start": job["start"], "seconds": job["end"] - job["start"]}
                      for job in chain(jobs)]}


def timeline_text(records: dict) -> str:
    lines = []
    for name, record in records.items():
        line = record.get("timeline") or {}
        if not line.get("jobs"):
            continue
        busy = ", ".join(f"{count} running: {seconds:.0f} s" for count, seconds in line["seconds_with_jobs_running"].items())
        lines.append(f"\n{name}: {line['jobs']} jobs in {line['wall_seconds']:.0f} s of wall time ({busy}); the chain "
                     "that set it: " + " -> ".join(f"{job['rule']} {job['seconds']:.0f} s" for job in line["chain"]))
    return "\n".join(lines)


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
        records[name] = {"run": str(run), "rules": rule_costs(run), "disk_mb": disk_mb(run),
                         "timeline": timeline(run, Path(args.log) if args.log else None)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=2) + "\n")
    print(markdown(records))
    print(timeline_text(records))
    return records


if __name__ == "__main__":
    main()
