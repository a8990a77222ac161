"""What a benchmark's figures were measured on: the git state and a digest of the audioprobe package."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    def git(*command):
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    package = hashlib.sha256()
    for path in sorted((REPO / "audioprobe").rglob("*.py")):
        package.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return {"head": git("rev-parse", "HEAD"), "modified": git("status", "--short", "--untracked-files=no").splitlines(),
            "audioprobe_sha256": package.hexdigest()}


def write_report(result: dict, out, table: str, load_start) -> None:
    """Write ``result`` as JSON to ``out``, print ``table``, and warn when the figures may be unreliable: the
    package changed during the run (``result["settings"]["code_changed_during_run"]``) or the machine was busy
    when it started (``load_start``, the load averages)."""
    import json
    import sys

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    if result["settings"]["code_changed_during_run"]:
        print("warning: audioprobe changed during the run; the figures may mix two versions", file=sys.stderr)
    if load_start[0] > 0.5:
        print(f"warning: load average {load_start[0]:.1f} before the run: other processes may slow it",
              file=sys.stderr)
    print(f"\nwritten: {out}", file=sys.stderr)
