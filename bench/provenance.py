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
