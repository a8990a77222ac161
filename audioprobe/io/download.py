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


class WeightsChanged(RuntimeError):
    """A weights file no longer has the sha256 recorded for it."""


def verify_weights(path, expected_sha256: str, config_key: str, *, recorded_in: str | None = None,
                   remedy: str | None = None) -> str:
    """Check ``path`` against its recorded sha256 (every time a job loads it) and return the digest.

    For weights the workflow downloaded (``config_key`` is the model's entry, ``models.<name>``; the
    digest is ``models.<name>.sha256``) and weights shipped inside an installed package (pass where the
    digest is recorded as ``recorded_in`` and what to do as ``remedy``, e.g. reinstall the package).
    Weights the user set in ``<config_key>.weights`` are theirs and are not checked. Hashing a few MB
    takes milliseconds.
    """
    actual = sha256_of(path)
    if actual != expected_sha256:
        recorded_in = recorded_in or f"{config_key}.sha256"
        remedy = remedy or (
            f"Delete {path} and run the workflow again, so that it is downloaded and checked afresh; or, to use "
            f"these weights on purpose, set {config_key}.weights to a file of your own (weights set there are "
            f"not checked against {recorded_in}).")
        raise WeightsChanged(f"{path} has sha256 {actual}, but {recorded_in} records {expected_sha256}: the "
                             f"file changed after it was checked, so the job stopped. {remedy}")
    return actual


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
