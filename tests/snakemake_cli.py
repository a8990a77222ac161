"""Every snakemake command line the tests run, built in one place.

``command`` builds the line, ``run`` runs it and ``start`` starts it in the background. They run the workflow
on the tiny config (or ``configfile``) in ``workdir``; ``config`` (a dict) is merged over it as a second
config file, because ``--config`` reads nested values as strings. ``weights`` points models.yamnet at a local
YAMNet (its class map beside it); without it the default config's download rule stays in the DAG.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
PROFILES = REPO / "profiles"


def yamnet_override(weights) -> str:
    """The ``--config`` entry that points models.yamnet at ``weights`` and its class map."""
    weights = Path(weights)
    entry = {"kind": "yamnet", "weights": str(weights), "class_map": str(weights.with_name("yamnet_class_map.csv"))}
    return "models=" + json.dumps({"yamnet": entry})


def override_file(workdir, config: dict) -> Path:
    """``config`` written beside ``workdir``, named by its content so that concurrent runs do not clash."""
    text = json.dumps(config, sort_keys=True)
    path = Path(workdir).parent / f"override-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text)
    return path


def command(workdir, *flags, weights=None, config: dict | None = None, configfile=TINY, cores: int | None = 2,
            entries: tuple[str, ...] = ()) -> list[str]:
    """The snakemake command line; ``flags`` (targets, -n, --profile ...) come before the config options.
    ``entries`` are extra raw ``--config`` entries such as ``'activations={"batch_size": 16}'``."""
    line = [SNAKEMAKE, "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    if cores is not None:
        line += ["--cores", str(cores)]
    line += [*map(str, flags), "--configfile", str(configfile)]
    if config:
        line.append(str(override_file(workdir, config)))
    config_entries = ([yamnet_override(weights)] if weights is not None else []) + list(entries)
    if config_entries:
        line += ["--config", *config_entries]
    return line


def environment(hash_seed: str = "0") -> dict[str, str]:
    """The environment of a run: ``hash_seed`` sets PYTHONHASHSEED (``"random"`` as users have it)."""
    return {**os.environ, "PYTHONHASHSEED": hash_seed}


def run(workdir, *flags, check: bool = True, hash_seed: str = "0", timeout: float | None = None,
        **options) -> subprocess.CompletedProcess:
    """Run snakemake (see :func:`command` for ``options``); with ``check``, a failure raises with its output."""
    result = subprocess.run(command(workdir, *flags, **options), capture_output=True, text=True,
                            env=environment(hash_seed), timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def start(workdir, *flags, log, hash_seed: str = "0", **options) -> subprocess.Popen:
    """Start snakemake in the background, its output going to the file ``log``; wait with ``finish``."""
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command(workdir, *flags, **options), stdout=out, stderr=subprocess.STDOUT,
                                env=environment(hash_seed), start_new_session=True)


def finish(process: subprocess.Popen, log) -> None:
    """Wait for a run from :func:`start`; a failure raises with the end of its log."""
    if process.wait() != 0:
        raise AssertionError(f"snakemake failed:\n{Path(log).read_text()[-6000:]}")


def output_of(result) -> str:
    return result if isinstance(result, str) else result.stdout + result.stderr


def scheduled(result) -> dict[str, int]:
    """Rule -> job count from the job stats table of a run or dry run ({} when nothing is to be done)."""
    text = output_of(result)
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
