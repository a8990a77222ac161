"""The workflow under stress, on the tiny config: the HTML report, faults (a job killed mid-write, an output
folder that cannot be written or fills up), two clean runs giving the same results, and exactly which rules
each config change reruns.

Everything that needs a finished run reads the session's one tiny run (conftest's ``tiny_run``); the fault
tests and the report work on copies, so it stays untouched. The determinism test compares it with conftest's
``second_run``, a clean run made side by side with it under another PYTHONHASHSEED.
"""

import ast
import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from audioprobe.io.atomic import temporary_beside
from audioprobe.io.store import LayerFile
from tests import snakemake_cli
from tests.conftest import REPO, require, unavailable
from tests.snakemake_cli import scheduled

RAW = "results/activations/yamnet/maas-synth"  # the extraction job's output folder
LAYERS = [f"layer{i}" for i in range(1, 15)]
EXTRACTION_TARGET = f"{RAW}/layer14.h5"  # one job writes every layer file
PART = re.compile(r"results/activations/yamnet/maas-synth/\.layer\d+\.h5\.[a-z0-9_]{8}\.part")


def ready_to_extract(tiny_run, tmp_path) -> Path:
    """A copy of what the finished tiny run's extraction job started from: its datasets and Snakemake's records."""
    workdir = tmp_path / "run"
    for part in (".snakemake", "results/datasets"):
        shutil.copytree(tiny_run / part, workdir / part, symlinks=True)
    return workdir


def leftover_parts(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (Path(root) / "results").rglob("*.part"))


# --- the report ------------------------------------------------------------------------------------------------

# Tables and figures a finished run makes that the report leaves out on purpose: path regex -> why.
NOT_IN_REPORT: dict[str, str] = {}
# Rule files whose tables and figures need not all be in the report (none: every rule file declares all).
UNCHECKED_RULE_FILES: set[str] = set()
TABLE_AND_FIGURE_SUFFIXES = (".csv", ".tsv", ".png", ".svg", ".pdf")
FIELD = "\x00"  # stands for an f-string's {expression} in a declared path


@dataclass
class Declared:
    """One ``report(...)`` of rules/*.smk: where it is, its rule (as a regex) and its output path(s)."""

    where: str
    rule: re.Pattern
    paths: list[str]
    keywords: set[str]

    def regexes(self) -> list[re.Pattern]:
        """Each path as a regex: a ``{wildcard}`` is one path component, an f-string field (``FIELD``) any text."""
        return [re.compile(".+".join("[^/]+".join(map(re.escape, re.split(r"\{[^}]*\}", piece)))
                                     for piece in path.split(FIELD))) for path in self.paths]


def _call_source(text: str, start: int) -> str:
    """The source of the call that begins at ``start`` (balanced parentheses, strings understood)."""
    depth, lines = 0, text[start:].splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO(text[start:]).readline):
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth == 0:
                row, col = token.end
                return "".join(lines[:row - 1]) + lines[row - 1][:col]
    raise AssertionError(f"unbalanced report( call at {text[start:start + 80]!r}")


def _path_of(node, where: str) -> str:
    """The output path of a report() call's first argument, through directory()/temp()/..., f-strings too."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and node.args:
        return _path_of(node.args[0], where)
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else FIELD for part in node.values)
    raise AssertionError(f"{where}: cannot read the output path of report({ast.unparse(node)}, ...); give it as a "
                         "string so that tests/test_robustness.py can check the report for it")


RULE_HEAD = re.compile(r"^\s*(?:rule|checkpoint)(?:\s+(\w+))?\s*:", re.M)


def _rule_name(text: str, head: re.Match) -> re.Pattern:
    """A rule's name as a regex; an anonymous rule's f-string ``name:`` has its fields as ``\\w+``."""
    if head.group(1):
        return re.compile(re.escape(head.group(1)))
    name = re.search(r"\bname:\s*f?\"([^\"]+)\"", text[head.end():])
    assert name, f"cannot find the name of the anonymous rule at {text[head.start():head.start() + 80]!r}"
    return re.compile(r"\w+".join(map(re.escape, re.split(r"\{[^}]*\}", name.group(1)))))


def _rule_at(text: str, start: int) -> re.Pattern:
    """The name of the rule (or checkpoint) that contains ``start``."""
    heads = list(RULE_HEAD.finditer(text[:start]))
    assert heads, f"report( at offset {start} is outside any rule"
    return _rule_name(text, heads[-1])


def rules_of(file_name: str) -> list[re.Pattern]:
    text = (REPO / "rules" / file_name).read_text()
    return [_rule_name(text, head) for head in RULE_HEAD.finditer(text)]


def declared_report_items() -> list[Declared]:
    """Every ``report(`` in rules/*.smk, read from the source, so that none can be left out unnoticed."""
    items = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"(?<![\w.])report\(", text):
            where = f"rules/{smk.name} line {text.count(chr(10), 0, match.start()) + 1}"
            call = ast.parse(_call_source(text, match.start()), mode="eval").body
            path = _path_of(call.args[0], where)
            keywords = {k.arg for k in call.keywords}
            patterns = next((ast.literal_eval(k.value) for k in call.keywords if k.arg == "patterns"), None)
            paths = [f"{path}/{pattern}" for pattern in patterns] if patterns else [path]
            items.append(Declared(where, _rule_at(text, match.start()), paths, keywords))
    return items


def made_files(workdir, weights) -> dict[str, str]:
    """Every file of the finished run's DAG (files inside directory outputs too) -> the rule that made it."""
    lines = snakemake_cli.run(workdir, "--summary", weights=weights).stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    made = {}
    for line in lines[start + 1:]:
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        path, rule = fields[0], fields[2]
        full = Path(workdir) / path
        if full.is_dir():
            made.update({str(p.relative_to(workdir)): rule for p in full.rglob("*") if p.is_file()})
        elif full.is_file():
            made[path] = rule
    return made


def embedded(html: str, name: str):
    match = re.search(rf'<script id="{name}">\s*var \w+ = (.*?);\s*</script>', html, re.S)
    assert match, f"the report has no {name} block"
    return json.loads(match.group(1))


def test_every_report_declaration_has_a_caption_and_a_category():
    items = declared_report_items()
    assert items
    for item in items:
        assert {"caption", "category"} <= item.keywords, f"{item.where}: report() needs caption= and category="


@pytest.mark.slow
def test_the_report_is_one_self_contained_file_with_every_declared_table_and_figure(tiny_run, yamnet_tflite,
                                                                                    tmp_path):
    report = tmp_path / "report.html"  # outside the run, which stays as it was
    snakemake_cli.run(tiny_run, "--report", str(report), weights=yamnet_tflite)
    html = report.read_text()
    # One file: nothing is loaded from anywhere else (scripts, styles, images are all inline).
    external = [url for url in re.findall(r"<(?:script|img|link|iframe|source|audio|video|embed)\b[^>]*?"
                                          r"\b(?:src|href)\s*=\s*[\"']([^\"']+)", html)
                if not url.startswith(("data:", "#"))]
    assert not external, f"the report loads {external[:5]}"
    results = embedded(html, "results")

    made = made_files(tiny_run, yamnet_tflite)
    rules_run = set(made.values())
    expected = set()
    for item in declared_report_items():  # (listening_analysis does not run: the tiny run has no responses)
        hits = {path for path in made for regex in item.regexes() if regex.fullmatch(path)}
        if any(item.rule.fullmatch(rule) for rule in rules_run):
            assert hits, f"{item.where}: its rule ran but no file matches {item.paths}"
        expected |= hits
    assert expected, "no declared report item was made by the tiny run"
    missing, unexpected = sorted(expected - set(results)), sorted(set(results) - expected)
    assert not missing and not unexpected, f"missing from the report: {missing}; not declared: {unexpected}"
    for path, item in results.items():
        assert item["caption"].strip(), f"{path} has no caption"
        header, _, payload = item["data_uri"].partition(";base64,")
        assert header.startswith("data:") and payload, f"{path} is not embedded in the report"
        assert base64.b64decode(payload) == (tiny_run / path).read_bytes(), f"{path}: the report holds other bytes"
    categories = embedded(html, "categories")
    assert "Other" not in categories and {"Foundation: datasets and activations", "Study 1: latent disentanglement",
                                          "Study 2: model metamers", "Study 3: network dissection"} <= set(categories)
    # Every table and figure the run made is in the report, unless NOT_IN_REPORT says why not.
    unchecked = [name for file_name in UNCHECKED_RULE_FILES for name in rules_of(file_name)]
    undeclared = sorted(path for path, rule in made.items() if path.endswith(TABLE_AND_FIGURE_SUFFIXES)
                        and path not in expected and not any(name.fullmatch(rule) for name in unchecked)
                        and not any(re.fullmatch(pattern, path) for pattern in NOT_IN_REPORT))
    assert not undeclared, f"declare these with report() in rules/*.smk (or list them in NOT_IN_REPORT): {undeclared}"


# --- faults ----------------------------------------------------------------------------------------------------

def test_a_new_write_removes_the_temporary_files_a_killed_writer_left(tmp_path):
    target = tmp_path / "layer1.h5"
    stale = tmp_path / ".layer1.h5.k3x_9a0q.part"
    other = tmp_path / ".layer10.h5.k3x_9a0q.part"  # another file's temporary file stays
    for path in (stale, other):
        path.write_bytes(b"half a file")
    tmp = Path(temporary_beside(target))
    assert tmp.exists() and not stale.exists() and other.exists()


@pytest.mark.slow
def test_a_killed_extraction_reruns_to_the_same_bytes_and_leaves_no_temporary_file(tiny_run, yamnet_tflite,
                                                                                   tmp_path):
    workdir = ready_to_extract(tiny_run, tmp_path)
    log = workdir / "results/logs/extract_activations/yamnet/maas-synth.log"
    process = snakemake_cli.start(workdir, EXTRACTION_TARGET, log=tmp_path / "killed.out", weights=yamnet_tflite)
    try:
        # Kill once a batch has been written into every layer's temporary file (the job logs each batch).
        deadline = time.monotonic() + 600
        while not (leftover_parts(workdir) and log.exists() and " clips (" in log.read_text()):
            if process.poll() is not None:
                pytest.fail(f"extraction ended (exit {process.returncode}) before it could be killed: "
                            f"{(tmp_path / 'killed.out').read_text()[-2000:]}")
            assert time.monotonic() < deadline, "no batch was written within 10 minutes"
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    parts = leftover_parts(workdir)
    assert parts and all(PART.fullmatch(part) for part in parts)
    assert not [layer for layer in LAYERS if (workdir / RAW / f"{layer}.h5").exists()], "a half file was published"

    # Snakemake's lock outlives a killed run: unlock, then rerun.
    snakemake_cli.run(workdir, "--unlock", weights=yamnet_tflite)
    snakemake_cli.run(workdir, EXTRACTION_TARGET, "--rerun-incomplete", weights=yamnet_tflite)
    assert leftover_parts(workdir) == []
    assert not list((workdir / ".snakemake/incomplete").glob("*"))
    for layer in LAYERS:
        rerun, undisturbed = workdir / RAW / f"{layer}.h5", tiny_run / RAW / f"{layer}.h5"
        with LayerFile(rerun) as stored:
            assert stored.activations.shape[0] == 36
        assert rerun.read_bytes() == undisturbed.read_bytes(), f"{layer}.h5 differs from the undisturbed run's"
    assert scheduled(snakemake_cli.run(workdir, EXTRACTION_TARGET, "-n", weights=yamnet_tflite)) == {}


@contextlib.contextmanager
def blocked(folder: Path, fault: str):
    """Make ``folder`` refuse new files ("read-only") or run out of space ("full"), also for root; a fault the
    machine cannot stage skips, except in CI, where it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    if fault == "read-only" and os.geteuid() != 0:
        folder.chmod(0o555)
        undo = [lambda: folder.chmod(0o755)]
    elif fault == "read-only":  # root ignores permission bits, not the immutable attribute
        result = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True) \
            if shutil.which("chattr") else None
        if result is None or result.returncode != 0:
            unavailable(f"cannot make {folder} immutable with chattr +i (needs e2fsprogs, ext4/xfs/btrfs and "
                        f"CAP_LINUX_IMMUTABLE): {result.stderr.strip() if result else 'no chattr'}")
        undo = [lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)]
    else:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                                capture_output=True, text=True) if shutil.which("mount") else None
        if result is None or result.returncode != 0:
            unavailable(f"cannot mount a 256 KiB tmpfs on {folder} (needs root with CAP_SYS_ADMIN): "
                        f"{result.stderr.strip() if result else 'no mount'}")
        undo = [lambda: subprocess.run(["umount", str(folder)], check=True)]
    try:
        yield
    finally:
        for step in undo:
            step()


@pytest.mark.slow
@pytest.mark.parametrize("fault, message", [("read-only", r"Operation not permitted|Permission denied"),
                                            ("full", r"No space left on device")])
def test_an_unwritable_output_folder_fails_naming_the_file_and_leaves_nothing_behind(tiny_run, yamnet_tflite,
                                                                                     tmp_path, fault, message):
    workdir = ready_to_extract(tiny_run, tmp_path)
    folder = workdir / RAW
    with blocked(folder, fault):
        result = snakemake_cli.run(workdir, EXTRACTION_TARGET, weights=yamnet_tflite, check=False)
        inside = sorted(p.name for p in folder.iterdir())
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(message, text), text[-3000:]
    assert PART.search(text), f"the error does not name the file it could not write:\n{text[-3000:]}"
    assert inside == [] and sorted(p.name for p in folder.iterdir()) == [], "a half-written file was left behind"
    # Nothing counts as done: the job is scheduled again.
    assert scheduled(snakemake_cli.run(workdir, EXTRACTION_TARGET, "-n", weights=yamnet_tflite)) == {
        "extract_activations_yamnet": 1}


# --- what a config change reruns -------------------------------------------------------------------------------

# Jobs of the tiny config that follow a step, shared by the cases below. The flow's own projection
# (project_layer, one job for the layer the decoding picks) follows the decoding checkpoint, so a dry run
# cannot list it: it runs once the decoding has.
LATENT_AFTER_DECODING = {"train_flow": 1, "figure1": 1, "transfer_edit": 1, "transfer_continue": 1,
                         "transfer_statistics": 1}
METAMERS_AFTER_SYNTHESIS = {"synthesise_metamers": 3, "validate_metamers": 3, "metamer_pass_rates": 1,
                            "listening_package": 1}
# The explanations' scores follow every table that holds an explanation.
SCORING = {"simulate_explanations": 1, "score_explanations": 1}
# Study 3 keeps this one up to date: its jobs that follow new maas-synth audio (and so new activations).
DISSECT_AFTER_MAAS_SYNTH = {"dissect_split": 1, "caption_clips": 1, "dissect_neurons": 3, "dissect_head": 1,
                            "summarise_neurons": 1, "calibrate_summaries": 1, "open_concepts": 1,
                            "concept_scores": 1, "closed_concepts": 1, "icl_concepts": 1, "evaluate_last_layer": 1,
                            "prune_by_concept": 1, "pos_ablation": 1, "interpretability": 1,
                            "heldout_neurons": 3, "caption_heldout": 1, **SCORING}

# The comparisons read the pooled layers (and the RSA the manifest's recordings): they follow any new pooling.
COMPARE_AFTER_POOLING = {"cka_pair": 1, "label_rsa": 1, "layer_profiles": 1}

RERUN_CASES = [
    # The tiny run is complete: with its own config, a dry run schedules nothing, so each case below shows only
    # what its change reruns.
    pytest.param({}, {}, id="unchanged-config"),
    pytest.param({"datasets": {"maas-synth": {"seed": 7}}},
                 {"generate_maas_synth": 1, "build_manifest": 1, "extract_activations_yamnet": 1,
                  "pool_activations": 14, "summarise_activations": 1, "latent_split": 1,
                  "latent_folds": 1, "project_folds": 14, "decode_layers": 1, **LATENT_AFTER_DECODING,
                  **DISSECT_AFTER_MAAS_SYNTH, **COMPARE_AFTER_POOLING, "all": 1},
                 id="dataset-seed"),
    # One layer fewer: no layer is extracted, pooled or projected again; the summary, the decoding and the
    # comparisons change, and with the decoding the flow, whose layer ("best") it picks.
    pytest.param({"activations": {"layers": [layer for layer in LAYERS if layer != "layer13"]}},
                 {"summarise_activations": 1, "decode_layers": 1, **LATENT_AFTER_DECODING, **COMPARE_AFTER_POOLING,
                  "all": 1},
                 id="activation-layers"),
    pytest.param({"latent": {"pca_components": 6}},
                 {"project_folds": 14, "decode_layers": 1, **LATENT_AFTER_DECODING,
                  "all": 1},
                 id="pca-components"),
    # Other decoding folds: new folds, fold projections and decoding; the flow's own projection stays.
    pytest.param({"latent": {"decode": {"folds": 3}}},
                 {"latent_folds": 1, "project_folds": 14, "decode_layers": 1, **LATENT_AFTER_DECODING, "all": 1},
                 id="decode-folds"),
    pytest.param({"latent": {"flow": {"epochs": 6}}},
                 {**LATENT_AFTER_DECODING, "all": 1},
                 id="flow-epochs"),
    # The space the transfer measures distances in is the transfer statistics' alone.
    pytest.param({"latent": {"transfer": {"distance_space": "logits"}}},
                 {"transfer_statistics": 1, "all": 1},
                 id="transfer-distance-space"),
    # Only the comparisons read the pooled layers: a new statistic pools again and compares again.
    pytest.param({"activations": {"pool": {"stat": "max"}}},
                 {"pool_activations": 14, **COMPARE_AFTER_POOLING, "all": 1},
                 id="pool-stat"),
    # A new keyword dataset reruns Study 2 only: no activations (they are of maas-synth), no Study 1 or 3 job.
    pytest.param({"datasets": {"commands-synth": {"seed": 5}}},
                 {"generate_commands_synth": 1, "build_manifest": 1, "keyword_split": 1, "keyword_waveforms": 1,
                  "train_keyword_model": 2, "keyword_model_tables": 1, **METAMERS_AFTER_SYNTHESIS, "all": 1},
                 id="keyword-dataset-seed"),
    # The metamers' ReLU gradient (a string of the schema's enum) reruns synthesis and what follows it only.
    pytest.param({"metamers": {"synthesis": {"relu_gradient": "true"}}},
                 {**METAMERS_AFTER_SYNTHESIS, "all": 1},
                 id="relu-gradient"),
    pytest.param({"metamers": {"synthesis": {"iterations": 30}}},
                 {**METAMERS_AFTER_SYNTHESIS, "all": 1},
                 id="metamer-iterations"),
    # A new summary prompt: the summaries and everything that reads them; captions and neurons stay.
    pytest.param({"dissect": {"llm": {"prompts": {"summary": "Descriptions:\n{captions}\nIn short:"}}}},
                 {"summarise_neurons": 1, "calibrate_summaries": 1, "open_concepts": 1, "closed_concepts": 1,
                  "icl_concepts": 1, "evaluate_last_layer": 1, "prune_by_concept": 1, "pos_ablation": 1, **SCORING,
                  "all": 1},
                 id="llm-prompt"),
    # Another prompt of the LLM (the adjective filter) reruns only its own step and what reads it.
    pytest.param({"dissect": {"llm": {"prompts": {"adjective": "Word: {word}\nA sound word:"}}}},
                 {"open_concepts": 1, "prune_by_concept": 1, "pos_ablation": 1, **SCORING, "all": 1},
                 id="adjective-prompt"),
    pytest.param({"dissect": {"similarity": {"functions": ["cos", "wpmi"]}}},
                 {"closed_concepts": 1, "evaluate_last_layer": 1, "prune_by_concept": 1, **SCORING, "all": 1},
                 id="similarity-function"),
    # The scale of the cosines is the closed-set matching's alone: the concept scores are not recomputed.
    pytest.param({"dissect": {"similarity": {"scale": 100}}},
                 {"closed_concepts": 1, "evaluate_last_layer": 1, "prune_by_concept": 1, **SCORING, "all": 1},
                 id="similarity-scale"),
    # More draws of the random pruning baselines rerun the pruning alone, not the closed concepts.
    pytest.param({"dissect": {"pruning": {"random_seeds": 2}}},
                 {"prune_by_concept": 1, "all": 1},
                 id="pruning-random-seeds"),
    pytest.param({"dissect": {"icl": {"summary": "highly"}}},
                 {"icl_concepts": 1, "evaluate_last_layer": 1, **SCORING, "all": 1},
                 id="icl-summary"),
    # ICL reads the calibrated summaries, so it and the last-layer table follow the calibration.
    pytest.param({"dissect": {"calibration": {"threshold": 0.6}}},
                 {"calibrate_summaries": 1, "open_concepts": 1, "icl_concepts": 1, "evaluate_last_layer": 1,
                  "prune_by_concept": 1, "pos_ablation": 1, **SCORING, "all": 1},
                 id="calibration-threshold"),
    # The scoring's own settings: the metrics' quantile reruns the scores alone (the LLM's predictions stay);
    # the simulation's prompt or clips rerun the simulation too.
    pytest.param({"dissect": {"scoring": {"alpha": 0.2}}}, {"score_explanations": 1, "all": 1}, id="scoring-alpha"),
    pytest.param({"dissect": {"scoring": {"simulation": {"max_clips": 8}}}}, {**SCORING, "all": 1},
                 id="simulation-clips"),
    pytest.param({"dissect": {"llm": {"prompts": {"simulation_line": "{caption} / {explanation}: "}}}},
                 {**SCORING, "all": 1}, id="simulation-prompt"),
    # Comparisons: each setting reruns its own measure (and the profile figure that reads the RSA tables).
    pytest.param({"compare": {"cka": {"unbiased": False}}}, {"cka_pair": 1, "all": 1}, id="cka-estimator"),
    pytest.param({"compare": {"label_rsa": {"bootstrap": 30}}}, {"label_rsa": 1, "layer_profiles": 1, "all": 1},
                 id="label-rsa-bootstrap"),
]


@pytest.mark.slow
@pytest.mark.parametrize("override, expected", RERUN_CASES)
def test_a_config_change_reruns_exactly_these_rules(tiny_run, yamnet_tflite, override, expected):
    assert scheduled(snakemake_cli.run(tiny_run, "-n", config=override, weights=yamnet_tflite)) == expected


# --- determinism -----------------------------------------------------------------------------------------------

# Left out of the comparison because they record time: results/logs/ (every job's log, with timings and
# rates) and results/benchmarks/ (every job's wall time and memory), and, in the files below, the keys that
# hold a duration. Nothing else a run writes holds a time: HDF5 files are written without timestamps
# (audioprobe.io.store), Keras' training history drops its per-epoch seconds, torch.save is given a file
# object (so the archive's inner folder name is fixed), and matplotlib's PNGs carry no date.
TIMED_FOLDERS = ("logs", "benchmarks")
TIMED_JSON_KEYS = {
    r"results/dissect/[^/]+/[^/]+/(summaries|simulation)\.llm\.json": {"seconds", "tokens_per_second"}}


# What the comparison must cover, so that it cannot pass by comparing nothing: kind -> path regex.
COMPARED = {"tables": r"results/.+\.(csv|tsv)",
            "HDF5 files": r"results/.+\.h5",
            "the flow": r"results/latent/.+/flow\.pt",
            "metamer WAVs": r"results/metamers/.+/wav/(?!natural/).+\.wav",
            "natural WAVs": r"results/metamers/.+/wav/natural/.+\.wav",
            "listening-test WAVs": r"results/metamers/.+/listening_test/.+\.wav"}


def run_files(root) -> set[str]:
    """Every file a run wrote under results/, except its logs and benchmarks."""
    results = Path(root) / "results"
    return {str(p.relative_to(root)) for p in results.rglob("*")
            if p.is_file() and p.relative_to(results).parts[0] not in TIMED_FOLDERS}


def same_values(x, y) -> bool:
    """Exactly equal: arrays (and numpy scalars) by dtype, shape and bytes (so NaN equals the same NaN)."""
    if isinstance(x, (np.ndarray, np.generic)) or isinstance(y, (np.ndarray, np.generic)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype.hasobject:
            return all(same_values(a, b) for a, b in zip(x.ravel().tolist(), y.ravel().tolist()))
        return x.tobytes() == y.tobytes()
    return type(x) is type(y) and x == y


def hdf5_contents(path) -> dict[str, object]:
    """Every group, every dataset's dtype and values, and every attribute (of the file, groups, datasets)."""
    contents = {}

    def add(name, item):
        where = "/" + name
        for key, value in item.attrs.items():
            contents[f"{where} attribute {key!r}"] = value
        if isinstance(item, h5py.Dataset):
            contents[f"{where} dtype"] = str(item.dtype)
            contents[where] = item[()]
        else:
            contents[where] = "group"

    with h5py.File(path, "r") as file:
        add("", file)
        file.visititems(add)
    return contents


def hdf5_difference(a: Path, b: Path) -> str | None:
    first, second = hdf5_contents(a), hdf5_contents(b)
    if first.keys() != second.keys():
        return f"only in one: {sorted(first.keys() ^ second.keys())[:10]}"
    differ = [name for name in first if not same_values(first[name], second[name])]
    return f"differs in {differ[:10]}" if differ else None


def torch_differences(x, y, where: str = "") -> list[str]:
    """Where two objects torch.load gave differ: tensors by dtype, shape and every value (bit for bit)."""
    torch = require("torch")
    if torch.is_tensor(x) or torch.is_tensor(y):
        same = (torch.is_tensor(x) and torch.is_tensor(y) and x.dtype == y.dtype and x.shape == y.shape
                and x.detach().cpu().numpy().tobytes() == y.detach().cpu().numpy().tobytes())
        return [] if same else [where or "/"]
    if isinstance(x, dict) and isinstance(y, dict):
        if x.keys() != y.keys():
            return [f"{where}: keys {sorted(map(str, x.keys() ^ y.keys()))}"]
        return [d for key in x for d in torch_differences(x[key], y[key], f"{where}/{key}")]
    if isinstance(x, (list, tuple)) and type(x) is type(y) and len(x) == len(y):
        return [d for i, (a, b) in enumerate(zip(x, y)) for d in torch_differences(a, b, f"{where}[{i}]")]
    return [] if type(x) is type(y) and x == y else [where or "/"]


def first_difference(a: Path, b: Path) -> str:
    try:
        lines = zip(a.read_text().splitlines(), b.read_text().splitlines())
        for number, (x, y) in enumerate(lines, start=1):
            if x != y:
                return f"line {number}: {x[:150]!r} vs {y[:150]!r}"
    except UnicodeDecodeError:
        return "other bytes"
    return "lengths differ"


def difference(path: str, a: Path, b: Path) -> str | None:
    """How a file of two runs differs, or None: HDF5 by content, flow.pt by its tensors, JSON without its
    timings, everything else (CSV, TSV, WAV, PNG, JSON caches) byte for byte."""
    if a.read_bytes() == b.read_bytes():
        return None
    if path.endswith(".h5"):
        return hdf5_difference(a, b)
    if path.endswith(".pt"):
        torch = require("torch")
        differ = torch_differences(torch.load(a, weights_only=True), torch.load(b, weights_only=True))
        return f"tensors or settings differ at {differ[:10]}" if differ else None
    timed = next((keys for pattern, keys in TIMED_JSON_KEYS.items() if re.fullmatch(pattern, path)), None)
    if timed is not None:
        x, y = (json.loads(p.read_text()) for p in (a, b))
        differ = sorted(key for key in x.keys() | y.keys() if key not in timed and x.get(key) != y.get(key))
        return f"keys {differ} differ" if differ else None
    return first_difference(a, b)


@pytest.mark.slow
def test_two_clean_runs_under_different_hash_seeds_write_the_same_results(second_run, tiny_run):
    """tiny_run runs with PYTHONHASHSEED=0, the second run with a random one (as users run it): every table is
    byte-identical, every HDF5 file holds the same datasets and attributes, the flow the same tensors, and every
    WAV (generated datasets, Study 2's metamers and natural sounds) the same bytes."""
    second = second_run()
    files = run_files(tiny_run)
    assert files == run_files(second), f"files of only one run: {sorted(files ^ run_files(second))}"
    # Not vacuous: each kind of result the issue names is there to compare.
    kinds = {kind: [path for path in files if re.fullmatch(pattern, path)] for kind, pattern in COMPARED.items()}
    assert all(kinds.values()), {kind: len(paths) for kind, paths in kinds.items()}
    differ = {path: difference(path, tiny_run / path, second / path) for path in sorted(files)}
    differ = {path: where for path, where in differ.items() if where is not None}
    assert not differ, "results that differ between two clean runs (PYTHONHASHSEED 0 and random):\n" + "\n".join(
        f"{path}: {where}" for path, where in differ.items())
