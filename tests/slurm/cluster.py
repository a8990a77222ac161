"""A throwaway single-node SLURM cluster (munged, slurmctld, slurmd) in a folder, for tests.

Everything lives under one folder: the munge key and socket, slurm.conf, state and spool folders, logs and pid
files. The daemons run in the foreground as children of this process and are stopped by their pid. Nothing is
written to /etc, /run or /var, so it neither needs nor disturbs a system SLURM; the ports are picked free.

Needs root (slurmd runs jobs as the submitting user) and Debian's ``slurmctld slurmd munge`` packages (22.05).

    python -m tests.slurm.cluster /tmp/slurm short compute   # start one by hand, Ctrl-C stops it
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")


def missing_programs() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if not _which(name)]


def _which(name: str) -> str | None:
    # The daemons are in /usr/sbin, which is not on every root PATH (e.g. in containers).
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> dict[str, int]:
    """CPUs and RealMemory as ``slurmd -C`` reports them for this machine."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    return {"cpus": int(fields["CPUs"]), "memory_mb": int(fields["RealMemory"])}


class LocalSlurm:
    """One node, one partition per name in ``partitions`` (the first is the default), no accounting."""

    def __init__(self, root: Path, partitions=("debug",)):
        self.root = Path(root)
        self.partitions = list(dict.fromkeys(partitions))
        self.hostname = socket.gethostname().split(".")[0]
        self.processes: dict[str, subprocess.Popen] = {}
        self.munge_dir = self.root / "munge"
        self.slurm_dir = self.root / "slurm"
        self.conf = self.slurm_dir / "slurm.conf"
        self.bin = self.root / "bin"
        self.controller_log = self.slurm_dir / "slurmctld.log"
        self.node_log = self.slurm_dir / "slurmd.log"
        self.hardware = node_hardware()
        # Leave some memory to the system, as a real node would: jobs asking for more are refused at submission.
        self.memory_mb = self.hardware["memory_mb"] - min(2048, self.hardware["memory_mb"] // 10)

    # --- environment -----------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, squeue, ... and snakemake's SLURM executor)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{self.bin}:{os.environ.get('PATH', '')}"}

    def run(self, *command, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=self.env, check=check, timeout=60)

    # --- set-up ----------------------------------------------------------------------------------------

    def _write_files(self) -> None:
        for folder in (self.munge_dir, self.slurm_dir / "state", self.slurm_dir / "spool", self.bin):
            folder.mkdir(parents=True, exist_ok=True)
        # munged wants its socket's folder searchable by all and writable by root alone.
        for folder in (self.root, self.munge_dir):
            folder.chmod(0o755)
        key = self.munge_dir / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)], check=True)
        key.chmod(0o400)
        controller_port, node_port = _free_port(), _free_port()
        cpus = self.hardware["cpus"]
        lines = [
            "# Written by tests/slurm/cluster.py: one node, no accounting, daemons run as root.",
            "ClusterName=audioprobe-test",
            f"SlurmctldHost={self.hostname}(127.0.0.1)",
            f"SlurmctldPort={controller_port}",
            f"SlurmdPort={node_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_dir / 'munge.socket'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            # Finished jobs stay visible to squeue for an hour: the executor polls squeue (there is no sacct here).
            "MinJobAge=3600",
            f"StateSaveLocation={self.slurm_dir / 'state'}",
            f"SlurmdSpoolDir={self.slurm_dir / 'spool'}",
            f"SlurmctldPidFile={self.slurm_dir / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.slurm_dir / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.controller_log}",
            f"SlurmdLogFile={self.node_log}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            f"NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={self.memory_mb} State=UNKNOWN",
        ]
        for index, name in enumerate(self.partitions):
            default = "YES" if index == 0 else "NO"
            lines.append(f"PartitionName={name} Nodes=ALL Default={default} MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        # The executor's job step drops every inherited SLURM_* variable before it calls srun inside the job,
        # SLURM_CONF included, so srun would look for /etc/slurm/slurm.conf. A real cluster has that file; this
        # one puts an srun first on PATH (exported to jobs with --export=ALL) that names its own slurm.conf.
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    def _wait_for(self, what: str, ready, timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}:\n"
                                       + self.logs())
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}:\n" + self.logs())

    def start(self) -> "LocalSlurm":
        self._write_files()
        m = self.munge_dir
        self._spawn("munged", [_which("munged"), "--foreground", "--force", f"--key-file={m / 'munge.key'}",
                               f"--socket={m / 'munge.socket'}", f"--pid-file={m / 'munged.pid'}",
                               f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"])
        self._wait_for("munged's socket", (m / "munge.socket").exists)
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait_for("slurmctld", lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0)
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.hostname])
        self._wait_for("an idle node", self._node_idle)
        return self

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
        return bool(out) and all(state == "idle" for state in out)

    # --- inspection and tear-down ------------------------------------------------------------------------

    def logs(self) -> str:
        parts = []
        for path in (self.root / "munged.out", self.munge_dir / "munged.log", self.root / "slurmctld.out",
                     self.controller_log, self.root / "slurmd.out", self.node_log):
            if path.exists():
                parts.append(f"--- {path} ---\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what is left in the queue, then stop slurmd, slurmctld and munged, each by its pid."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.run("scancel", f"--partition={','.join(self.partitions)}", check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `kill` and `timeout` also stop the daemons
    root = Path(sys.argv[1])
    with LocalSlurm(root, sys.argv[2:] or ["debug"]) as cluster:
        print(f"export SLURM_CONF={cluster.conf} PATH={cluster.bin}:$PATH   # Ctrl-C stops the cluster")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
