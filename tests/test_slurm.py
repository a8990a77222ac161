"""profiles/slurm on a real SLURM: a single-node cluster (munged, slurmctld, slurmd from Debian's packages) is
started in a temporary folder, the whole tiny config (all three studies) runs through `--workflow-profile
profiles/slurm`, and its results must equal those of a local run.

Needs root and `slurmctld slurmd munge` (./setup.sh installs them). Without them the test skips, unless CI is set:
then it fails.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import REPO
from tests.slurm.cluster import LocalSlurm, missing_programs
from tests.test_workflow import job_counts

pytestmark = pytest.mark.workflow
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY = REPO / "tests" / "configs" / "tiny.yaml"
PROFILE = REPO / "profiles" / "slurm"

VENV = Path(sys.executable).parent.parent
# What a job may legitimately do differently on SLURM: its log and benchmark (timings, host names).
VARYING = ("results/logs/", "results/benchmarks/")


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def partition_of(rule: str) -> str:
    settings = profile()
    return settings.get("set-resources", {}).get(rule, {}).get(
        "slurm_partition", settings["default-resources"]["slurm_partition"])


def profile_partitions() -> list[str]:
    """The partitions the profile names, its default first: the test cluster has exactly these."""
    settings = profile()
    names = [settings["default-resources"]["slurm_partition"]]
    names += [entry["slurm_partition"] for entry in settings.get("set-resources", {}).values()
              if "slurm_partition" in entry]
    return list(dict.fromkeys(names))


def requested_resources(output: str) -> dict[str, tuple[str, int, dict]]:
    """SLURM job id -> (rule, threads, resources) as snakemake printed them when it submitted the job."""
    by_job = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n)", output):
        match = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):\n", block, re.M)
        job = re.search(r"^\s+jobid: (\d+)$", block, re.M)
        if match and job and "resources:" in block:
            threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
            line = block.split("resources:", 1)[1].splitlines()[0]
            by_job[job.group(1)] = (match.group(1), int(threads.group(1)) if threads else 1,
                                    dict(re.findall(r"(\w+)=([^,]+)", line)))
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    return {slurm_id: by_job[job_id] for job_id, slurm_id in submitted}


def minutes(limit: str) -> int:
    """squeue's time limit ([days-]hours:minutes:seconds, or minutes:seconds) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    seconds = sum(value * 60 ** power for power, value in enumerate(reversed(parts)))
    return int(days or 0) * 1440 + seconds // 60


def not_available(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node cluster; its daemons are stopped by pid when the module's tests are done."""
    missing = missing_programs()
    if missing:
        not_available(f"SLURM is not installed ({', '.join(missing)} missing): ./setup.sh installs slurmctld, "
                      "slurmd and munge")
    if os.geteuid() != 0:
        not_available("starting slurmd and munged needs root")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), profile_partitions())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def snakemake_command(workdir, *flags, weights) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *flags,
            "--configfile", str(TINY), "--config",
            "models=" + json.dumps({"yamnet": {"kind": "yamnet", "weights": str(weights),
                                               "class_map": str(Path(weights).with_name("yamnet_class_map.csv"))}})]


def snakemake(workdir, *flags, weights, env=None, timeout=2400):
    result = subprocess.run(snakemake_command(workdir, *flags, weights=weights), capture_output=True, text=True,
                            timeout=timeout, env={**(env or os.environ), "PYTHONHASHSEED": "0"})
    Path(f"{workdir}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result.stdout + result.stderr


def start_local_run(workdir, weights) -> subprocess.Popen:
    """The local reference run, in the background: the SLURM run mostly waits on its scheduler."""
    with open(f"{workdir}.log", "w") as log:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen(snakemake_command(workdir, "--cores", "2", weights=weights), stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})


def result_files(workdir: Path) -> dict[str, Path]:
    files = {}
    for path in sorted((workdir / "results").rglob("*")):
        name = path.relative_to(workdir).as_posix()
        if path.is_file() and not name.startswith(VARYING):
            files[name] = path
    return files


def hdf5_contents(path: Path) -> dict:
    """Every dataset's values and every attribute of a file and its groups, by name."""
    contents = {}
    with h5py.File(path, "r") as file:
        def visit(name, item):
            for key, value in item.attrs.items():
                contents[f"{name}@{key}"] = np.asarray(value)
            if isinstance(item, h5py.Dataset):
                contents[name] = item[()]

        visit("/", file)
        file.visititems(visit)
    return contents


def assert_same_hdf5(a: Path, b: Path, name: str):
    first, second = hdf5_contents(a), hdf5_contents(b)
    assert first.keys() == second.keys(), name
    for key in first:
        assert first[key].dtype == second[key].dtype and np.array_equal(first[key], second[key]), f"{name}: {key}"


# Rules whose mem_mb grows with the layer file they read (audioprobe.latent.projection.projection_mem_mb).
MEMORY_FROM_INPUT_SIZE = {"project_layer", "project_folds"}


def test_the_profile_maps_only_rules_of_the_workflow_to_partitions(tmp_path, yamnet_tflite):
    """A dry run with the profile needs no SLURM: every job gets a partition, memory and a time limit."""
    listed = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                             "--list-rules", "--configfile", str(TINY)], capture_output=True, text=True, check=True)
    rules = set(listed.stdout.split())
    assert set(profile()["set-resources"]) <= rules
    dry = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                          "--workflow-profile", str(PROFILE), "-n", "--configfile", str(TINY), "--config",
                          "models=" + json.dumps({"yamnet": {"kind": "yamnet", "weights": str(yamnet_tflite)}})],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):\n(.*?)\n\n", dry.stdout + "\n\n", re.M | re.S)
    assert len(jobs) > 20
    for rule, text in jobs:
        if rule == "all":
            continue
        resources = dict(re.findall(r"(\w+)=([^,\n]+)", text.split("resources:", 1)[1].splitlines()[0]))
        assert resources["slurm_partition"] == partition_of(rule), rule
        assert int(resources["runtime"]) > 0, rule
        if rule in MEMORY_FROM_INPUT_SIZE:  # known once the input exists: a dry run prints <TBD>
            assert resources["mem_mb"] == "<TBD>", rule
        else:
            assert int(resources["mem_mb"]) > 0, rule


def test_the_workflow_runs_through_slurm_like_it_runs_locally(slurm, tmp_path, yamnet_tflite):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    expected_jobs = job_counts(snakemake(on_slurm, "-n", weights=yamnet_tflite))
    expected_jobs.pop("all")  # the target rule runs in snakemake itself, not as a SLURM job
    # The flow's projection (one per Study 1 run, for the layer the decoding picks) follows the decoding
    # checkpoint, so the dry run cannot list it.
    assert "project_layer" not in expected_jobs
    expected_jobs["project_layer"] = 1
    assert {"extract_activations_yamnet", "train_flow", "synthesise_metamers", "summarise_neurons",
            "prune_by_concept"} <= set(expected_jobs)
    local_run = start_local_run(local, yamnet_tflite)
    try:
        output = snakemake(on_slurm, "--workflow-profile", str(PROFILE),
                           # This cluster has no accounting database, so no sacct: status comes from squeue.
                           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                           "--slurm-keep-successful-logs", weights=yamnet_tflite, env=slurm.env)
        local_exit = local_run.wait(timeout=2400)
    finally:
        if local_run.poll() is None:  # the SLURM run failed or the local one hangs: do not leave it running
            local_run.kill()
            local_run.wait()
    assert local_exit == 0, Path(f"{local}.log").read_text()[-4000:]

    # Every job went through sbatch: snakemake names the SLURM job ids, each has its SLURM log, and slurmctld
    # accepted and completed each one, in the partition and with the CPUs, memory and time the profile asks.
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    assert len(job_ids) == sum(expected_jobs.values()), output[-4000:]
    logs = {path.stem: path for path in (on_slurm / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert set(logs) == set(job_ids)
    controller_log = slurm.controller_log.read_text()
    queue = slurm.run("squeue", "--states=all", "--noheader", "--format=%i|%P|%k|%C|%m|%l|%T").stdout
    jobs = {fields[0]: fields[1:] for fields in (line.split("|") for line in queue.split())}
    requested = requested_resources(output)
    ran = {}
    for job_id in job_ids:
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={job_id}\b", controller_log), job_id
        assert re.search(rf"_job_complete: JobId={job_id} done", controller_log), job_id
        partition, comment, cpus, memory, limit, state = jobs[job_id]
        rule, threads, resources = requested[job_id]
        assert comment.startswith(f"rule_{rule}"), (job_id, rule, comment)
        ran[rule] = ran.get(rule, 0) + 1
        assert state == "COMPLETED", (job_id, rule, state)
        assert partition == resources["slurm_partition"] == partition_of(rule), (job_id, rule, partition)
        assert int(cpus) == threads, (rule, cpus)
        assert memory == f"{resources['mem_mb']}M", (rule, memory)
        assert minutes(limit) == int(resources["runtime"]), (rule, limit)
        # Inside the job, the venv's snakemake ran the rule.
        log = logs[job_id].read_text()
        assert f"Command: {VENV}/" in log and re.search(rf"^(?:rule|checkpoint) {rule}:$", log, re.M), log[-2000:]
        assert "Finished job" in log, log[-2000:]
    assert ran == expected_jobs

    # The same files, with the same contents.
    slurm_files, local_files = result_files(on_slurm), result_files(local)
    assert list(slurm_files) == list(local_files)
    assert {f"results/activations/yamnet/maas-synth/layer{i}.h5" for i in range(1, 15)} <= set(slurm_files)
    for name, path in slurm_files.items():
        if name.endswith(".h5"):
            assert_same_hdf5(path, local_files[name], name)
        elif name.endswith(".llm.json"):  # LLM calls and tokens must match; the seconds they took need not
            assert without_timings(path) == without_timings(local_files[name]), name
        else:
            assert path.read_bytes() == local_files[name].read_bytes(), name


def without_timings(path: Path) -> dict:
    record = json.loads(path.read_text())
    assert {"llm_calls", "cache_hits", "tokens", "seconds"} <= set(record), path
    return {key: value for key, value in record.items() if key not in ("seconds", "tokens_per_second")}
