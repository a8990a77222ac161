"""Fetch a file once, check its sha256, and say clearly what to do when that is impossible."""

from __future__ import annotations

import hashlib
import logging
import urllib.request

from audioprobe.io.atomic import atomic_path

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    pass


def sha256_of(path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path, sha256: str, *, config_key: str, timeout: float = 60.0) -> None:
    log.info("downloading %s", url)
    digest = hashlib.sha256()
    try:
        with atomic_path(path) as tmp, urllib.request.urlopen(url, timeout=timeout) as response, \
                open(tmp, "wb") as handle:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                handle.write(block)
            if digest.hexdigest() != sha256:
                raise DownloadError(f"{url} gave a file with sha256 {digest.hexdigest()}, expected {sha256}; "
                                    f"nothing was written to {path}")
    except DownloadError:
        raise
    except OSError as err:
        raise DownloadError(
            f"could not download {url} ({err}). Offline? Put the file at {path} yourself, or set {config_key} "
            "in your config to a local copy (see README, 'Your own models').") from err
    log.info("wrote %s (sha256 %s)", path, sha256)
