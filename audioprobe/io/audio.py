"""Reading, checking and normalising audio files.

Every file that enters a manifest passes through :func:`decode` and :func:`check_signal`, and every clip
is read back through :func:`load_checked`, which either returns a mono float32 signal at the requested
sample rate or raises :class:`BadAudio` saying what is wrong with it.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MIN_SAMPLE_RATE = 1000
READ_BLOCK_FRAMES = 1 << 18
FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


class BadAudio(ValueError):
    """A file that cannot become a clip. ``reason`` is a short machine-friendly tag."""

    def __init__(self, path, reason: str, detail: str):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def require_regular_file(path) -> None:
    """Raise :class:`BadAudio` for anything but a regular file, without opening it (opening a FIFO blocks)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        detail = "broken symbolic link" if os.path.islink(path) else "no such file"
        raise BadAudio(path, "unreadable", detail) from None
    except OSError as err:
        raise BadAudio(path, "unreadable", err.strerror or type(err).__name__) from err
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")
        raise BadAudio(path, "not_regular_file", f"{kind}, not a regular file; it was not opened")


def probe(path) -> AudioInfo:
    """Header information without decoding the whole file."""
    require_regular_file(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for unreadable input
        raise BadAudio(path, "unreadable", str(err).strip() or type(err).__name__) from err
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def read(path, start: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` (or a span of it) to float32 of shape [frames, channels].

    The whole file (no span) is read by :func:`decode`, which also rejects truncated files.
    """
    if not start and duration is None:
        data, info = decode(path)
        return data, info.sample_rate
    info = probe(path)
    first = int(round(start * info.sample_rate))
    count = -1 if duration is None else int(round(duration * info.sample_rate))
    try:
        with sf.SoundFile(str(path)) as handle:
            if first:
                handle.seek(first)
            data = handle.read(frames=count, dtype="float32", always_2d=True)
    except Exception as err:
        raise BadAudio(path, "unreadable", str(err).strip() or type(err).__name__) from err
    return data, info.sample_rate


def decode(path) -> tuple[np.ndarray, AudioInfo]:
    """Every frame of ``path`` as float32 [frames, channels], and its header.

    Raises :class:`BadAudio` ``truncated`` when fewer frames decode than the file declares: a WAV cut
    short (libsndfile itself only reports the frames the file still holds, so the RIFF header is read
    here), an MP3 whose stream ends early or is garbled (its Xing/Info header gives the count, or without
    one the frame headers do: see :func:`mpeg_frames`). An MP3 without such a header whose frames the
    decoder does not all deliver is ``unreadable``: libsndfile stops at a length guessed from the first
    frame's bitrate, which is too short for VBR.
    """
    info = probe(path)
    try:
        declared = declared_frames(path, info)
        with sf.SoundFile(str(path)) as handle:
            data = _read_to_end(handle)
    except Exception as err:
        raise BadAudio(path, "unreadable", str(err).strip() or type(err).__name__) from err
    if isinstance(declared, MpegFrames):
        _check_mpeg(path, data.shape[0], declared)
    elif declared is not None and data.shape[0] < declared:
        raise BadAudio(path, "truncated", f"decoded {data.shape[0]} of {declared} frames the header declares")
    return data, info


def _check_mpeg(path, decoded: int, walked: "MpegFrames") -> None:
    """Compare the frames decoded from an MP3 without a Xing/Info/VBRI header with its frame headers."""
    counted = f"{walked.samples} frames counted from the MPEG frame headers"
    if walked.cut_short:
        raise BadAudio(path, "truncated", f"decoded {decoded} of {counted}; the last frame is cut short "
                                          f"({walked.cut_short} bytes missing)")
    if decoded >= walked.samples:
        return
    if walked.variable_bitrate:
        raise BadAudio(path, "unreadable", f"decoded only {decoded} of {counted}: a VBR MP3 without a Xing/Info "
                                           f"header, whose length libsndfile guesses from the first frame's "
                                           f"bitrate and stops there; convert it to FLAC or WAV (or re-encode "
                                           f"it with a Xing header) to use it")
    raise BadAudio(path, "truncated", f"decoded {decoded} of {counted}")


def _read_to_end(handle: sf.SoundFile) -> np.ndarray:
    """Decode block by block until the decoder stops, so a header promising too much costs no memory."""
    blocks = []
    while True:
        block = handle.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
        blocks.append(block)
        if block.shape[0] < READ_BLOCK_FRAMES:
            return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def declared_frames(path, info: AudioInfo) -> "int | MpegFrames | None":
    """Frames the file promises: the RIFF data chunk for WAV; for an MP3 without a Xing/Info/VBRI header
    (where libsndfile's count is a guess) the frame headers' count (:func:`mpeg_frames`); libsndfile's
    count otherwise."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _riff_data_frames(handle)
        if head[:3] == b"ID3" or _mpeg_header(head, 0) is not None:
            handle.seek(0)
            walked = mpeg_frames(handle.read())
            if walked is not None:
                return walked
    return info.frames


def _riff_data_frames(handle) -> int | None:
    """The data chunk's size in frames; None when the header leaves it open (0 or 0xFFFFFFFF, streamed)."""
    block_align = None
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
        if name == b"fmt ":
            fmt = handle.read(size + (size & 1))
            block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
        else:
            handle.seek(size + (size & 1), os.SEEK_CUR)


# MPEG audio frame headers (ISO 11172-3, 13818-3 and the MPEG-2.5 extension): kbit/s by (MPEG-1?, layer)
MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
MPEG_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version
VBR_TAGS = (b"Xing", b"Info", b"VBRI")


@dataclass(frozen=True)
class MpegFrames:
    """What walking an MP3's frame headers found: ``samples`` per channel in its whole frames, the bytes
    missing from a last frame cut short (0 if none), and whether the bitrate varies from frame to frame."""

    samples: int
    cut_short: int
    variable_bitrate: bool


def _mpeg_header(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(frame length in bytes, samples per frame, bitrate index) of a valid frame header at ``at``, else None.

    Free-format streams (bitrate index 0) have no length in their header, and are not walked.
    """
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    bitrate_index, rate_index, padding = data[at + 2] >> 4, (data[at + 2] >> 2) & 3, (data[at + 2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bits_per_second = MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = MPEG_SAMPLE_RATES[version][rate_index]
    if layer == 1:
        return (12 * bits_per_second // rate + padding) * 4, 384, bitrate_index
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bits_per_second // rate + padding, samples, bitrate_index


def _id3v2_size(data: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of ``data`` (header, syncsafe size and optional footer), else 0."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def mpeg_frames(data: bytes) -> MpegFrames | None:
    """Count an MP3's samples from its frame headers; None when it has a Xing/Info/VBRI header (libsndfile
    reads the count from that) or holds no frame that can be walked.

    The walk skips an ID3v2 tag, then goes from frame to frame by the length each header gives. Bytes that
    are not a frame (a damaged stretch, a trailing ID3v1 or APE tag) are skipped up to the next header
    that is followed by another one, as a decoder resynchronises. A frame that ends past the end of the
    file is not counted, and marks the file as cut short.
    """
    at, samples, bitrates, first, cut_short = _id3v2_size(data), 0, set(), True, 0
    in_sync = False
    while at < len(data):
        header = _mpeg_header(data, at)
        if header is None or not (in_sync or _confirmed(data, at, header[0])):
            in_sync = False
            at = data.find(b"\xff", at + 1)
            if at < 0:
                break
            continue
        length, per_frame, bitrate_index = header
        if first:
            if any(tag in data[at:at + min(length, 64)] for tag in VBR_TAGS):
                return None
            first = False
        if at + length > len(data):
            cut_short = at + length - len(data)
            break
        samples, in_sync = samples + per_frame, True
        bitrates.add(bitrate_index)
        at += length
    if first:
        return None
    return MpegFrames(samples, cut_short, len(bitrates) > 1)


def _confirmed(data: bytes, at: int, length: int) -> bool:
    """Whether a header found by searching is real: its frame ends at the end of the data or at another header."""
    end = at + length
    return end == len(data) or _mpeg_header(data, end) is not None


def peak(data: np.ndarray) -> float:
    """The largest absolute sample; above 1.0 only in float files (integer PCM cannot exceed full scale)."""
    return float(np.max(np.abs(data))) if data.size else 0.0


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average all channels: right for stereo pairs and multichannel arrays alike."""
    if data.ndim == 1:
        return data
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return signal.astype(np.float32, copy=False)
    return soxr.resample(signal, source_rate, target_rate, quality="HQ").astype(np.float32)


def check_signal(path, data: np.ndarray, sample_rate: int, min_seconds: float) -> None:
    """Raise :class:`BadAudio` for signals no analysis should see."""
    if sample_rate < MIN_SAMPLE_RATE:
        raise BadAudio(path, "bad_sample_rate", f"{sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz")
    if data.ndim != 2 or data.shape[1] < 1:
        raise BadAudio(path, "no_channels", f"decoded array has shape {data.shape}")
    if data.shape[0] == 0:
        raise BadAudio(path, "empty", "the file holds no samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise BadAudio(path, "non_finite", f"{bad} NaN or Inf samples")
    seconds = data.shape[0] / sample_rate
    if seconds < min_seconds:
        raise BadAudio(path, "too_short", f"{seconds:.3f} s is shorter than min_seconds={min_seconds}")


def load_checked(path, target_rate: int, min_seconds: float = 0.0, start: float = 0.0,
                 duration: float | None = None) -> np.ndarray:
    """Mono float32 at ``target_rate``; raises :class:`BadAudio` for unusable input."""
    data, rate = read(path, start, duration)
    check_signal(path, data, rate, min_seconds)
    return resample(to_mono(data), rate, target_rate)


def fit_length(signal: np.ndarray, samples: int) -> np.ndarray:
    """Crop or zero-pad at the end to exactly ``samples``."""
    if signal.shape[0] >= samples:
        return signal[:samples]
    return np.pad(signal, (0, samples - signal.shape[0]))


def write_wav(path, signal: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, written to a temporary name and renamed when complete."""
    from audioprobe.io.atomic import atomic_path

    clipped = np.clip(np.asarray(signal, dtype=np.float64), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, clipped, sample_rate, subtype="PCM_16", format="WAV")


def is_audio_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
