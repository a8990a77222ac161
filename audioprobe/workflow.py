"""Glue for the thin entry scripts in workflow/scripts/: logging to the rule's log file, and seeds."""

from __future__ import annotations

import logging
import os
import random
import sys
import traceback

import numpy as np


def setup(snakemake) -> logging.Logger:
    """Send log records and uncaught errors to the rule's log file (and stderr)."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        os.makedirs(os.path.dirname(str(snakemake.log[0])) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(str(snakemake.log[0]), mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger(f"audioprobe.{snakemake.rule}")

    def log_uncaught(kind, value, trace):
        log.error("failed: %s", "".join(traceback.format_exception(kind, value, trace)))

    sys.excepthook = log_uncaught
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    return log


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def pruned_network(snakemake):
    """The frozen network and its head on held-out clips, for the two pruning rules (same inputs and params)."""
    from audioprobe.dissect.pruning import load_pruned_network

    return load_pruned_network(start_path=snakemake.input.start, split_path=snakemake.input.split,
                               head_path=snakemake.input.head, label=snakemake.params.dissect["label"],
                               model_name=snakemake.wildcards.model, model_config=snakemake.params.model_config,
                               weights=snakemake.params.weights, threads=snakemake.threads)
