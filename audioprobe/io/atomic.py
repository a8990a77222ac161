"""Write files so that a reader never sees half of one: temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path


def stale_parts(target: Path) -> list[Path]:
    """Temporary files of ``target`` (``.<name>.XXXXXXXX.part``) left behind by a killed writer."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.part")
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return []
    return [Path(entry.path) for entry in entries
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]


def temporary_beside(target: Path) -> str:
    """A new empty file next to ``target``, with the permissions a plain ``open`` would give it.

    A writer killed outright (SIGKILL, out of memory, power loss) cannot remove its temporary file, so
    starting a new write of ``target`` first removes the ones left behind: only one job at a time writes
    a given output (Snakemake's lock sees to that), so none of them can still be in use.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_parts(target):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    tmp = temporary_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, record) -> None:
    write_text(path, json.dumps(record, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_csv(path, frame, config=None) -> None:
    """A pandas table as CSV; ``config`` goes into a leading ``# config: {...}`` comment line."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            if config is not None:
                handle.write("# config: " + canonical_json(config) + "\n")
            frame.to_csv(handle, index=False, lineterminator="\n", float_format="%.6g")


def read_csv(path):
    import pandas as pd

    return pd.read_csv(path, comment=None, skiprows=_config_lines(path), keep_default_na=False,
                       na_values=[""])


def read_csv_config(path):
    with open(path) as handle:
        first = handle.readline()
    if first.startswith("# config: "):
        return json.loads(first[len("# config: "):])
    return None


def _config_lines(path) -> int:
    with open(path) as handle:
        return 1 if handle.readline().startswith("# config: ") else 0


def canonical_json(record) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a JSON record")
