"""Study 2 pass rates at several synthesis iteration counts, from finished runs of the metamer branch.

Runs nothing: each ``--run LABEL=DIR`` is a workflow folder (e.g. one run with
``bench/configs/metamers-1500.yaml`` and one with the same file at 300 iterations). For each it reads
``results/metamers/<dataset>/pass_rates.csv``, the synthesis settings recorded in every
``<net>/metamers.h5`` (iterations, relu_gradient, targets) and the ``synthesise_metamers`` benchmark
seconds, and prints one markdown table of passed/metamers (and the median Spearman rho between metamer and
natural activations) per network x layer, with a column per run.

    .venv/bin/python bench/metamer_iterations.py --run 300=/tmp/bench-s2-300 --run 1500=/tmp/bench-s2-1500
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=DIR of a finished workflow run")
    parser.add_argument("--dataset", default="commands-synth")
    parser.add_argument("--out", default=str(REPO / "bench/out/metamer_iterations.json"))
    args = parser.parse_args(argv)
    if any("=" not in run for run in args.run):
        parser.error("--run takes LABEL=DIR")
    return args


def run_figures(folder: Path, dataset: str) -> dict:
    """Pass rates, synthesis settings and synthesis seconds per network of one run."""
    import h5py

    from audioprobe.io.atomic import read_csv

    base = folder / "results/metamers" / dataset
    rates = read_csv(base / "pass_rates.csv")
    settings, seconds = {}, {}
    for net in rates["model"].unique():
        with h5py.File(base / net / "metamers.h5", "r") as file:
            settings[net] = json.loads(file.attrs["config"])["synthesis"]
        bench = folder / f"results/benchmarks/synthesise_metamers/{dataset}/{net}.tsv"
        seconds[net] = float(pd.read_csv(bench, sep="\t")["s"].iloc[0]) if bench.exists() else float("nan")
    return {"rates": rates, "settings": settings, "seconds": seconds}


def table(runs: dict) -> pd.DataFrame:
    """Rows network x layer, a 'passed/metamers (median Spearman rho)' column per run."""
    columns = []
    for label, figures in runs.items():
        rates = figures["rates"].set_index(["model", "layer"])
        cells = [f"{int(row.passed)}/{int(row.metamers)} (ρ {row.median_spearman:.3f})" for row in rates.itertuples()]
        columns.append(pd.Series(cells, index=rates.index, name=label))
    return pd.concat(columns, axis=1).reset_index()


def main(argv=None) -> None:
    args = parse_args(argv)
    runs = {label: run_figures(Path(folder), args.dataset)
            for label, folder in (run.split("=", 1) for run in args.run)}
    result = table(runs)
    print(result.to_markdown(index=False))
    for label, figures in runs.items():
        for net, settings in figures["settings"].items():
            print(f"{label}: {net}: {json.dumps(settings, sort_keys=True)}; synthesis {figures['seconds'][net]:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"table": result.to_dict(orient="records"),
                                          "runs": {label: {"settings": f["settings"], "seconds": f["seconds"]}
                                                   for label, f in runs.items()}}, indent=1))


if __name__ == "__main__":
    main()
