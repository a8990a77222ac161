"""profiles/slurm on a real SLURM: a single-node cluster (munged, slurmctld, slurmd from Debian's packages) is
started in a temporary folder, the whole tiny config (all three studies) runs through `--workflow-profile
profiles/slurm`, and its results must equal those of the session's local tiny run (``tiny_run``).

The profile groups small jobs (its `groups:`): one SLURM job then runs several rules, and asks for the group's
resources as snakemake sums and maxes them. The test checks each SLURM job against the jobs it ran.

Needs root and `slurmctld slurmd munge` (./setup.sh installs them). Without them the test skips, unless CI is set:
then it fails.
"""

import json
import os
import re
import signal
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests import snakemake_cli
from tests.conftest import unavailable
from tests.slurm.cluster import LocalSlurm, missing_programs

pytestmark = pytest.mark.slow
PROFILE = snakemake_cli.PROFILES / "slurm"

VENV = Path(sys.executable).parent.parent
# What a job may legitimately do differently on SLURM: its log and benchmark (timings, host names).
VARYING = ("results/logs/", "results/benchmarks/")


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


# rule families the profile configures once for every model's rule (rules/common.smk: inherit_profile_settings)
FAMILIES = {"extract_activations": re.compile(r"^extract_activations_\w+$")}


def resources_name(rule: str) -> str:
    """The set-resources entry that sets ``rule``'s resources: its own, or its family's for a per-model rule."""
    if rule in profile().get("set-resources", {}):
        return rule
    return next((family for family, pattern in FAMILIES.items() if pattern.match(rule)), rule)


def partition_of(rule: str) -> str:
    settings = profile()
    return settings.get("set-resources", {}).get(resources_name(rule), {}).get(
        "slurm_partition", settings["default-resources"]["slurm_partition"])


def profile_partitions() -> list[str]:
    """The partitions the profile names, its default first: the test cluster has exactly these."""
    settings = profile()
    names = [settings["default-resources"]["slurm_partition"]]
    names += [entry["slurm_partition"] for entry in settings.get("set-resources", {}).values()
              if "slurm_partition" in entry]
    return list(dict.fromkeys(names))


def profile_groups() -> dict[str, list[str]]:
    """Group name -> the rules the profile puts in it."""
    groups = {}
    for rule, group in profile().get("groups", {}).items():
        groups.setdefault(group, []).append(rule)
    return groups


JOB = re.compile(r"^([ \t]*)(?:local)?(?:rule|checkpoint) (\w+):\n"
                 # the block's lines are indented further; the next job's time stamp or rule line ends it
                 r"((?:[ \t]+(?!\[|(?:local)?(?:rule|checkpoint) )\S.*\n?)*)", re.M)
GROUP = re.compile(r"^\[[^\]\n]+\] Group job (\w+) \(jobs in lexicogr\. order\):$", re.M)


def job_blocks(output: str) -> list[dict]:
    """Every job block in snakemake's output, in order: rule, threads, resources, jobid, wildcards, and whether
    it is indented (the members of a group job are printed indented under their group's header)."""
    jobs = []
    for match in JOB.finditer(output):
        indent, rule, text = match.groups()
        if rule == "all" or "resources:" not in text:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", text, re.M)
        wildcards = re.search(r"^\s+wildcards: (.*)$", text, re.M)
        line = text.split("resources:", 1)[1].splitlines()[0]
        jobs.append({"rule": rule, "threads": int(threads.group(1)) if threads else 1,
                     "resources": dict(re.findall(r"(\w+)=([^,]+)", line)),
                     "jobid": re.search(r"^\s+jobid: (\S+)$", text, re.M).group(1),
                     "wildcards": wildcards.group(1).strip() if wildcards else "", "member": bool(indent),
                     "start": match.start()})
    return jobs


def job_key(job: dict) -> tuple[str, str]:
    return job["rule"], job["wildcards"]


def submitted_jobs(output: str, slurm_logs: dict[str, Path]) -> dict[str, tuple[str | None, list[dict]]]:
    """SLURM job id -> (group name or None, the jobs it ran as :func:`job_blocks` reads them from snakemake's
    output of a SLURM run).

    A single job's submission line names its jobid. A group's names an id of its own, and the plugin submits
    from a thread pool, so submission lines need not follow their blocks: a group job is matched to the group
    block whose jobs (rule and wildcards) are the ones its SLURM log shows snakemake running."""
    headers = [(match.start(), match.group(1)) for match in GROUP.finditer(output)]
    singles, members = {}, {}  # members: header index -> the jobs printed under that header
    for job in job_blocks(output):
        if job["member"]:
            members.setdefault(sum(start < job["start"] for start, _ in headers) - 1, []).append(job)
        else:
            singles[job["jobid"]] = job
    groups = [{"name": headers[index][1], "jobs": jobs} for index, jobs in sorted(members.items())]
    assert len(groups) == len(headers), "a group header without jobs"
    by_slurm_id = {}
    for jobid, slurm_id in re.findall(r"^Job (\S+) has been submitted with SLURM jobid (\d+)", output, re.M):
        if jobid in singles:
            by_slurm_id[slurm_id] = (None, [singles.pop(jobid)])
            continue
        ran = {job_key(job) for job in job_blocks(slurm_logs[slurm_id].read_text())}
        matches = [group for group in groups if {job_key(job) for job in group["jobs"]} == ran]
        assert len(matches) == 1, (slurm_id, ran, [group["name"] for group in matches])
        groups.remove(matches[0])
        by_slurm_id[slurm_id] = (matches[0]["name"], matches[0]["jobs"])
    assert not singles and not groups, (singles, groups)  # every job printed was submitted
    return by_slurm_id


def minutes(limit: str) -> int:
    """squeue's time limit ([days-]hours:minutes:seconds, or minutes:seconds) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    seconds = sum(value * 60 ** power for power, value in enumerate(reversed(parts)))
    return int(days or 0) * 1440 + seconds // 60


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node cluster; its daemons are stopped by pid when the module's tests are done."""
    missing = missing_programs()
    if missing:
        unavailable(f"SLURM is not installed ({', '.join(missing)} missing): ./setup.sh installs slurmctld, "
                    "slurmd and munge")
    if os.geteuid() != 0:
        unavailable("starting slurmd and munged needs root")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), profile_partitions())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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
    """A dry run with the profile needs no SLURM: every job gets a partition, memory and a time limit, and the
    profile's groups only join rules of one partition."""
    listed = snakemake_cli.run(tmp_path, "--list-rules", cores=None)
    rules = set(listed.stdout.split()) | set(FAMILIES)
    settings = profile()
    assert set(settings["set-resources"]) <= rules
    groups = profile_groups()
    assert set(settings["groups"]) <= rules
    # Groups span dependencies only: snakemake 9.27 merges groups with group-components again at each DAG update.
    assert "group-components" not in settings
    for group, members in groups.items():
        assert len({partition_of(rule) for rule in members}) == 1, (group, members)
    dry = snakemake_cli.run(tmp_path, "--workflow-profile", PROFILE, "-n", weights=yamnet_tflite, cores=None)
    jobs = job_blocks(snakemake_cli.output_of(dry))
    assert len(jobs) == sum(snakemake_cli.scheduled(dry).values()) - 1  # every job but `all`
    assert {job["rule"] for job in jobs} >= {"pool_activations", "project_folds", "synthesise_metamers"}
    for job in jobs:
        rule, resources = job["rule"], job["resources"]
        assert resources["slurm_partition"] == partition_of(rule), rule
        assert int(resources["runtime"]) > 0, rule
        # A group job is at most `cores` CPUs wide: no rule may need more on its own.
        assert job["threads"] <= settings["cores"], rule
        if rule in MEMORY_FROM_INPUT_SIZE:  # known once the input exists: a dry run prints <TBD>
            assert resources["mem_mb"] == "<TBD>", rule
        else:
            assert int(resources["mem_mb"]) > 0, rule


def run_on_slurm(slurm, workdir: Path, weights, timeout: float = 2400):
    """Start the tiny config through the profile on ``slurm`` in the background; returns (process, log)."""
    log = workdir.parent / f"{workdir.name}.log"
    with pytest.MonkeyPatch.context() as patch:  # the SLURM clients (sbatch, squeue) find this cluster
        for key in ("SLURM_CONF", "PATH"):
            patch.setenv(key, slurm.env[key])
        process = snakemake_cli.start(
            workdir, "--workflow-profile", PROFILE,
            # This cluster has no accounting database, so no sacct: status comes from squeue.
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
            "--slurm-keep-successful-logs", log=log, weights=weights, cores=None)
    return process, log


def test_the_workflow_runs_through_slurm_like_it_runs_locally(slurm, tmp_path, yamnet_tflite, request):
    on_slurm = tmp_path / "slurm"
    expected_jobs = snakemake_cli.scheduled(snakemake_cli.run(on_slurm, "-n", weights=yamnet_tflite))
    expected_jobs.pop("all")  # the target rule runs in snakemake itself, not as a SLURM job
    # The flow's projection (one per Study 1 run, for the layer the decoding picks) follows the decoding
    # checkpoint, so the dry run cannot list it.
    assert "project_layer" not in expected_jobs
    expected_jobs["project_layer"] = 1
    assert {"extract_activations_yamnet", "train_flow", "synthesise_metamers", "summarise_neurons",
            "prune_by_concept"} <= set(expected_jobs)
    process, log = run_on_slurm(slurm, on_slurm, yamnet_tflite)
    try:
        # The SLURM run mostly waits on its scheduler: the session's local run (if not made yet) runs meanwhile.
        local = request.getfixturevalue("tiny_run")
        process.wait(timeout=2400)
    finally:
        if process.poll() is None:  # the local run failed or the SLURM one hangs: do not leave it running
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    snakemake_cli.finish(process, log)
    output = log.read_text()

    # Every job went through sbatch: snakemake names the SLURM job ids, each has its SLURM log, and slurmctld
    # accepted and completed each one, in the partition and with the CPUs, memory and time the profile asks.
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    logs = {path.stem: path for path in (on_slurm / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert set(logs) == set(job_ids), output[-4000:]
    submitted = submitted_jobs(output, logs)
    controller_log = slurm.controller_log.read_text()
    queue = slurm.run("squeue", "--states=all", "--noheader", "--format=%i|%P|%k|%C|%m|%l|%T").stdout
    jobs = {fields[0]: fields[1:] for fields in (line.split("|") for line in queue.split())}
    settings, groups = profile(), profile_groups()
    ran, group_jobs = {}, {}
    for job_id, (group, members) in submitted.items():
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={job_id}\b", controller_log), job_id
        assert re.search(rf"_job_complete: JobId={job_id} done", controller_log), job_id
        partition, comment, cpus, memory, limit, state = jobs[job_id]
        rules = [job["rule"] for job in members]
        assert state == "COMPLETED", (job_id, rules, state)
        for job in members:
            ran[job["rule"]] = ran.get(job["rule"], 0) + 1
            assert partition == job["resources"]["slurm_partition"] == partition_of(job["rule"]), (job_id, job)
        threads = [job["threads"] for job in members]
        mem_mb = [int(job["resources"]["mem_mb"]) for job in members]
        runtime = [int(job["resources"]["runtime"]) for job in members]
        assert memory.endswith("M"), (job_id, memory)
        if group is None:
            (rule,) = rules
            assert comment.startswith(f"rule_{rule}"), (job_id, rule, comment)
            assert int(cpus) == threads[0], (rule, cpus)
            assert int(memory[:-1]) == mem_mb[0], (rule, memory)
            assert minutes(limit) == runtime[0], (rule, limit)
        else:
            # A group job asks for its jobs together: snakemake sizes it as if the ones that do not depend on
            # each other ran side by side, in rounds at most `cores` CPUs wide, and asks for the largest round's
            # memory and the sum of the rounds' runtimes (plugin 2.8.0 then runs them one after another). So it
            # asks for at least what its largest job needs, and at most: `cores` CPUs, the memory of its `cores`
            # largest jobs together, and all its runtimes one after the other.
            group_jobs.setdefault(group, []).append(job_id)
            assert set(rules) <= set(groups[group]), (job_id, group, rules)
            assert comment.startswith(f"rule_{group}_"), (job_id, group, comment)
            assert max(threads) <= int(cpus) <= min(settings["cores"], sum(threads)), (group, rules, cpus)
            assert max(mem_mb) <= int(memory[:-1]) <= sum(sorted(mem_mb)[-settings["cores"]:]), (group, memory)
            assert max(runtime) <= minutes(limit) <= sum(runtime), (group, rules, limit)
        # Inside the job, the venv's snakemake ran the rules.
        text = logs[job_id].read_text()
        assert f"Command: {VENV}/" in text, text[-2000:]
        for rule in set(rules):
            assert re.search(rf"^\s*(?:rule|checkpoint) {rule}:$", text, re.M), (rule, text[-2000:])
        assert text.count("Finished job") >= len(rules), text[-2000:]
    assert ran == expected_jobs
    # Grouping took effect: every group of the profile with jobs in this run was submitted as group jobs, each
    # running several jobs.
    grouped = {group for group, members in groups.items() if set(members) & set(expected_jobs)}
    assert set(group_jobs) == grouped, (set(group_jobs), grouped)
    assert all(len(submitted[job_id][1]) > 1 for ids in group_jobs.values() for job_id in ids), group_jobs
    print(f"{len(job_ids)} SLURM jobs ran the {sum(expected_jobs.values())} jobs; groups: "
          + ", ".join(f"{group} x{len(ids)}" for group, ids in sorted(group_jobs.items())))

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
