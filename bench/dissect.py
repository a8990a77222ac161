"""Cost of Study 3 (network dissection) and what its caches save.

Reads a finished run (a Snakemake working directory): each Study 3 rule's benchmark TSV (time, peak
memory), the caption throughput from the caption_clips log, and the LLM calls, cache hits and tokens/s of
the three LLM steps (summaries, adjective filter, in-context concepts). With ``--reruns`` it then, in that
working directory:

1. forces the LLM steps to rerun with unchanged prompts and counts LLM calls (target: zero);
2. changes one module's setting (``dissect.calibration.threshold``), lists the rules a dry run schedules,
   runs them and counts LLM calls;
3. runs the original config again, which restores the results (from the caches, so without LLM calls).

    .venv/bin/python bench/dissect.py [--run .] [--reruns] [--out bench/out/dissect.json]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RULES = ["dissect_split", "dissect_neurons", "dissect_head", "caption_clips", "summarise_neurons",
         "calibrate_summaries", "open_concepts", "concept_scores", "closed_concepts", "icl_concepts",
         "evaluate_last_layer", "prune_by_concept", "pos_ablation", "interpretability"]
LLM_RULES = ["summarise_neurons", "open_concepts", "icl_concepts"]
STATS = re.compile(r"(\{'llm_calls'.*?\})")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(REPO), help="a finished Snakemake working directory")
    parser.add_argument("--model", default="yamnet")
    parser.add_argument("--dataset", default="maas-synth")
    parser.add_argument("--reruns", action="store_true", help="also measure forced and changed-setting reruns")
    parser.add_argument("--threshold", type=float, default=0.6, help="the changed calibration threshold")
    parser.add_argument("--out", default=str(REPO / "bench/out/dissect.json"))
    return parser.parse_args(argv)


def stage_costs(run: Path, model: str, dataset: str) -> dict:
    costs = {}
    for rule in RULES:
        rows = [pd.read_csv(path, sep="\t").iloc[0] for path in sorted((run / "results/benchmarks" / rule).rglob(
            f"*{dataset}*.tsv")) if model in str(path)]
        if rows:
            costs[rule] = {"jobs": len(rows), "seconds": round(sum(float(r["s"]) for r in rows), 1),
                           "max_rss_mb": round(max(float(r["max_rss"]) for r in rows), 0)}
    return costs


def log_text(run: Path, rule: str, model: str, dataset: str) -> str:
    path = run / "results/logs" / rule / model / f"{dataset}.log"
    return path.read_text() if path.is_file() else ""


def llm_stats(run: Path, model: str, dataset: str) -> dict:
    """The last stats record each LLM rule logged."""
    out = {}
    for rule in LLM_RULES:
        found = STATS.findall(log_text(run, rule, model, dataset))
        out[rule] = ast.literal_eval(found[-1]) if found else None
    return out


def caption_throughput(run: Path, model: str, dataset: str) -> dict | None:
    match = re.search(r"captions \((.+?)\): (\d+) clips in ([\d.]+) s \(([\d.]+) captions/s\)",
                      log_text(run, "caption_clips", model, dataset))
    if not match:
        return None
    return {"captioner": match.group(1), "clips": int(match.group(2)), "seconds": float(match.group(3)),
            "captions_per_second": float(match.group(4))}


def snakemake(run: Path, *flags) -> str:
    result = subprocess.run([SNAKEMAKE, "--cores", "2", *flags], cwd=run, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    return result.stdout + result.stderr


def scheduled(text: str) -> dict[str, int]:
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def calls(stats: dict) -> dict:
    return {rule: (record or {}).get("llm_calls") for rule, record in stats.items()}


def reruns(run: Path, model: str, dataset: str, threshold: float) -> dict:
    targets = [f"results/dissect/{model}/{dataset}/{name}" for name in
               ("last_layer.csv", "pruning.csv", "pos_ablation.csv", "interpretability.csv")]
    # -f on the LLM steps' own outputs: with -R, Snakemake drops the jobs after the summaries once these come
    # out unchanged, and the adjective filter and ICL would not be measured.
    base = f"results/dissect/{model}/{dataset}"
    snakemake(run, "-f", *(f"{base}/{name}" for name in ("summaries.csv", "open_concepts.csv", "icl.csv")))
    forced = calls(llm_stats(run, model, dataset))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        json.dump({"dissect": {"calibration": {"threshold": threshold}}}, handle)
    changed = ["--configfile", str(run / "config.yaml"), handle.name]
    jobs = scheduled(snakemake(run, "-n", *changed, "--", *targets))
    snakemake(run, *changed, "--", *targets)
    after_change = calls(llm_stats(run, model, dataset))
    snakemake(run, "--", *targets)
    restored = calls(llm_stats(run, model, dataset))
    return {"forced_rerun_llm_calls": forced,
            "changed_setting": {"key": "dissect.calibration.threshold", "value": threshold, "rules": jobs,
                                "llm_calls": after_change},
            "restore_llm_calls": restored}


def main(argv=None) -> dict:
    args = parse_args(argv)
    run = Path(args.run).resolve()
    record = {"run": str(run), "stages": stage_costs(run, args.model, args.dataset),
              "captions": caption_throughput(run, args.model, args.dataset),
              "llm": llm_stats(run, args.model, args.dataset)}
    if args.reruns:
        record["reruns"] = reruns(run, args.model, args.dataset, args.threshold)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("| stage | jobs | seconds | peak MB |\n|---|---|---|---|")
    for rule, cost in record["stages"].items():
        print(f"| {rule} | {cost['jobs']} | {cost['seconds']} | {cost['max_rss_mb']:.0f} |")
    print(json.dumps({k: v for k, v in record.items() if k != "stages"}, indent=2))
    return record


if __name__ == "__main__":
    main()
