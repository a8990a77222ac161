"""ESC-50 (Piczak 2015), the probe set of the AND paper: fetched once from the official archive,
checksum-verified, and unpacked with a label table the ``csv`` label scheme reads."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd

from audioprobe.io.download import DownloadError, download, sha256_of

log = logging.getLogger(__name__)

META = "meta/esc50.csv"
LABELS = "labels.csv"
#: how the manifest reads the unpacked set: class and fold labels, clips of one Freesound recording together
LABEL_SCHEME = {"scheme": "csv", "csv": LABELS, "path_column": "path", "columns": ["category", "fold"],
                "group_column": "src_file"}


def fetch_archive(url: str, archive, sha256: str | None, *, config_key: str) -> None:
    """The archive at ``archive``: downloaded when missing, and checked against ``sha256`` when one is set."""
    archive = Path(archive)
    if not archive.is_file():
        if sha256:
            download(url, archive, sha256, config_key=config_key)
            return
        log.warning("%s.sha256 is not set: the download cannot be verified; pin the sha256 logged below",
                    config_key)
        download_unverified(url, archive, config_key=config_key)
    actual = sha256_of(archive)
    if sha256 and actual != sha256:
        raise DownloadError(f"{archive} has sha256 {actual}, expected {sha256} ({config_key}.sha256): delete it "
                            "or fix the checksum")
    log.info("%s: sha256 %s", archive, actual)


def download_unverified(url: str, archive: Path, *, config_key: str) -> None:
    import urllib.request

    from audioprobe.io.atomic import atomic_path

    try:
        with atomic_path(archive) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as err:
        raise DownloadError(f"could not download {url} ({err}). Offline? Put the ESC-50 zip at {archive} "
                            f"yourself, or set {config_key}.archive to a local copy") from err


def unpack(archive, out_dir) -> pd.DataFrame:
    """Extract ``audio/*.wav`` and ``meta/esc50.csv`` into ``out_dir`` and write ``labels.csv``."""
    out_dir = Path(out_dir)
    with zipfile.ZipFile(archive) as zipped:
        members = {_inside_root(name): name for name in zipped.namelist() if not name.endswith("/")}
        if META not in members:
            raise ValueError(f"{archive} has no {META}: is it the ESC-50 archive?")
        for relative, name in members.items():
            if relative == META or (relative.startswith("audio/") and relative.endswith(".wav")):
                target = out_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(name) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    meta = pd.read_csv(out_dir / META, dtype=str, keep_default_na=False)
    missing = [name for name in meta["filename"] if not (out_dir / "audio" / name).is_file()]
    if missing:
        raise ValueError(f"{archive}: {len(missing)} files listed in {META} are not in audio/, e.g. {missing[0]}")
    labels = meta.assign(path="audio/" + meta["filename"])[["path", "category", "fold", "target", "src_file"]]
    labels.to_csv(out_dir / LABELS, index=False)
    log.info("ESC-50: %d clips, %d classes, %d folds", len(labels), labels["category"].nunique(),
             labels["fold"].nunique())
    return labels


def _inside_root(name: str) -> str:
    """A member's path below the archive's top folder (ESC-50-master/...); refuses paths that climb out."""
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise ValueError(f"archive member {name!r} points outside the archive")
    return str(PurePosixPath(*parts[1:])) if len(parts) > 1 else name
