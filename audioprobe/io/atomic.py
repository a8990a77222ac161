"""Write files so that a reader never sees half of one: temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

RESULTS = "results"


class OutsideResultsError(PermissionError):
    """A write under ``results/`` whose real folder is outside it (a symbolic link leads out)."""


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (plain paths: resolve links first where they matter)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_inside_results(path) -> None:
    """Refuse to write ``path`` when it lies under the working directory's ``results/`` (relative or absolute)
    but its real folder is not inside the real ``results/``: a symbolic link in a shared results folder must
    not redirect writes elsewhere. ``results/`` itself may be a link (to scratch space, say). Paths outside
    ``results/`` are not checked."""
    results = os.path.join(os.getcwd(), RESULTS)
    target = os.path.abspath(path)
    if not target.startswith(results + os.sep):
        return
    real_results = os.path.realpath(results)
    folder = os.path.dirname(target)
    real = os.path.realpath(folder)
    if is_within(real, real_results):
        return
    link = results
    for part in Path(folder).relative_to(results).parts:
        link = os.path.join(link, part)
        if not is_within(os.path.realpath(link), real_results):
            break
    try:
        points_to = f" -> {os.readlink(link)}"
    except OSError:
        points_to = ""
    raise OutsideResultsError(
        f"refusing to write {path}: its folder is really {real}, outside {real_results}, because {link} is a "
        f"symbolic link{points_to}; remove the link {link} (or replace it with a real folder) and rerun")


def replace_checked(tmp, target) -> None:
    """``os.replace(tmp, target)`` after checking again that ``target`` stays inside ``results/``."""
    check_inside_results(target)
    os.replace(tmp, target)


def links_leaving(root=RESULTS) -> list[tuple[str, str]]:
    """(link, real path) of every symbolic link under ``root`` (not followed) that leads outside it."""
    if not os.path.isdir(root):
        return []
    real_root = os.path.realpath(root)
    out, folders = [], [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not is_within(real, real_root):
                        out.append((entry.path, real))
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
    return sorted(out)


def check_results_links(root=RESULTS) -> None:
    """Before a run: refuse a ``results/`` with symbolic links leading out of it (Snakemake's own writes,
    such as logs, benchmarks and output folders, follow them), naming each."""
    leaving = links_leaving(root)
    if leaving:
        listed = "; ".join(f"{link} -> {real}" for link, real in leaving[:10])
        more = f" and {len(leaving) - 10} more" if len(leaving) > 10 else ""
        raise OutsideResultsError(f"{root}/ has symbolic links leading outside it ({listed}{more}): writes and "
                                  "reads through them would leave the results folder; remove them (or replace "
                                  "them with real folders or files) and rerun")


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
    check_inside_results(target)  # before creating any folder or file through a link that leads out
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
        replace_checked(tmp, target)
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
