import numpy as np
import pytest
import soundfile as sf

from audioprobe.io import audio
from tests.conftest import shared_path, tone


def test_stereo_and_multichannel_are_averaged_to_mono(write_wav):
    left, right = tone(0.5, freq=300), tone(0.5, freq=900)
    path = write_wav("stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    signal = audio.load_checked(path, 16000)
    assert signal.ndim == 1
    np.testing.assert_allclose(signal, (left + right) / 2, atol=1e-6)
    six = write_wav("six.wav", tone(0.5, channels=6), subtype="FLOAT")
    np.testing.assert_allclose(audio.load_checked(six, 16000), tone(0.5), atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_sample_rates_are_resampled_keeping_pitch(write_wav, rate):
    path = write_wav(f"r{rate}.wav", tone(1.0, rate=rate, freq=1000.0), rate=rate)
    signal = audio.load_checked(path, 16000)
    assert abs(signal.shape[0] - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.shape[0])))
    assert abs(np.argmax(spectrum) * 16000 / signal.shape[0] - 1000.0) < 2.0


def test_nan_and_inf_samples_are_rejected(write_wav):
    data = tone(0.5)
    data[100] = np.nan
    data[200] = np.inf
    path = write_wav("nan.wav", data, subtype="FLOAT")
    with pytest.raises(audio.BadAudio) as err:
        audio.load_checked(path, 16000)
    assert err.value.reason == "non_finite" and "nan.wav" in str(err.value) and "2 NaN" in str(err.value)


def test_empty_and_too_short_files_are_rejected(write_wav):
    with pytest.raises(audio.BadAudio) as err:
        audio.load_checked(write_wav("silence.wav", np.zeros(0)), 16000)
    assert err.value.reason == "empty"
    with pytest.raises(audio.BadAudio) as err:
        audio.load_checked(write_wav("short.wav", tone(0.05)), 16000, min_seconds=0.1)
    assert err.value.reason == "too_short"


def test_truncated_and_garbage_files_are_rejected_by_name(write_wav, tmp_path):
    whole = write_wav("whole.wav", tone(1.0)).read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole[:30])  # header cut in the middle
    garbage = tmp_path / "garbage.ogg"
    garbage.write_bytes(b"this is not audio at all" * 10)
    for path in (truncated, garbage):
        with pytest.raises(audio.BadAudio) as err:
            audio.load_checked(path, 16000)
        assert err.value.reason == "unreadable" and path.name in str(err.value)


def test_spans_are_read_at_the_right_offset(write_wav):
    data = np.concatenate([np.zeros(16000), np.ones(16000) * 0.25])
    path = write_wav("steps.wav", data, subtype="FLOAT")
    span = audio.load_checked(path, 16000, start=0.75, duration=0.5)
    assert span.shape == (8000,)
    assert np.all(span[:4000] == 0) and np.allclose(span[4000:], 0.25)


def test_fit_length_crops_and_pads():
    x = np.arange(5, dtype=np.float32)
    assert audio.fit_length(x, 3).tolist() == [0, 1, 2]
    assert audio.fit_length(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


def test_real_ogg_and_float_stereo_recordings_decode():
    ogg = next(iter(sorted(shared_path("data", "esc10", "ogg").rglob("*.ogg"))))
    signal = audio.load_checked(ogg, 16000)
    assert signal.dtype == np.float32 and 3 * 16000 < signal.shape[0] < 8 * 16000 and np.isfinite(signal).all()
    nut = shared_path("data", "materials_roll", "data", "07_12_2017_recordings", "steel_nut_M4_1.wav")
    info = audio.probe(nut)
    assert info.channels == 2 and info.sample_rate == 44100
    assert audio.load_checked(nut, 16000).ndim == 1


def cut(path, fraction=0.5):
    """The file with its bytes after ``fraction`` removed, header intact (written next to it)."""
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[:int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_a_wav_cut_to_half_is_truncated_with_both_frame_counts(write_wav, subtype):
    path = cut(write_wav("whole.wav", tone(1.0), subtype=subtype))
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(path)
    assert err.value.reason == "truncated"
    decoded = int(err.value.detail.split()[1])
    assert 7900 < decoded < 8000 and err.value.detail.endswith("of 16000 frames the header declares")
    with pytest.raises(audio.BadAudio) as err:
        audio.load_checked(path, 16000)  # the whole file: checked the same way
    assert err.value.reason == "truncated"


def write_mp3(tmp_path, name="tone.mp3", seconds=2.0):
    path = tmp_path / name
    sf.write(path, tone(seconds), 16000, format="MP3")
    return path


def test_a_truncated_mp3_is_decoded_to_the_end_and_rejected(tmp_path):
    whole = write_mp3(tmp_path)
    assert audio.decode(whole)[0].shape == (32000, 1)
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(cut(whole))
    assert err.value.reason == "truncated" and err.value.detail.endswith("of 32000 frames the header declares")
    assert int(err.value.detail.split()[1]) < 20000


def test_a_garbled_mp3_is_rejected(tmp_path):
    whole = write_mp3(tmp_path)
    data = bytearray(whole.read_bytes())
    middle, span = len(data) // 2, len(data) // 10
    data[middle:middle + span] = np.random.default_rng(0).integers(0, 256, span, dtype=np.uint8).tobytes()
    garbled = tmp_path / "garbled.mp3"
    garbled.write_bytes(bytes(data))
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(garbled)
    assert err.value.reason == "truncated" and "of 32000 frames the header declares" in err.value.detail


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_flac_and_ogg_cut_to_half_are_rejected_too(tmp_path, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, tone(2.0), 16000, format=fmt)
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(cut(path))
    assert err.value.reason in ("unreadable", "truncated") and "cut_tone" in str(err.value)


def test_peak_is_the_largest_absolute_sample(write_wav):
    data, _ = audio.decode(write_wav("loud.wav", tone(0.5) * -660, subtype="FLOAT"))
    assert audio.peak(data) == pytest.approx(330, rel=1e-4)


# --- MP3s without a Xing/Info header: the frame headers give the count ---------------------------------------

MPEG2_LAYER3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


def without_first_frame(path):
    """Remove the first frame, which holds the Xing/Info header (libsndfile writes 16-kHz MP3 as MPEG-2
    layer III, frame length 72 * bitrate / rate + padding), as an encoder that writes none would leave it."""
    data = path.read_bytes()
    assert data[0] == 0xFF and data[1] & 0xFE == 0xF2, "not MPEG-2 layer III"
    length = 72 * MPEG2_LAYER3_KBPS[data[2] >> 4] * 1000 // 16000 + (data[2] >> 1 & 1)
    assert b"Xing" in data[:length] or b"Info" in data[:length]
    path.write_bytes(data[length:])
    return path


def tone_then_noise(seconds=3.0):
    """Half tone, half noise: a VBR encoder changes the bitrate between them."""
    half = int(seconds * 16000) // 2
    noise = 0.3 * np.random.default_rng(0).standard_normal(half)
    return np.concatenate([tone(seconds)[:half], noise])


def write_vbr_mp3(tmp_path, name="vbr.mp3"):
    path = tmp_path / name
    sf.write(path, tone_then_noise(), 16000, format="MP3", bitrate_mode="VARIABLE", compression_level=0.5)
    return path


def test_a_vbr_mp3_without_xing_header_that_libsndfile_reads_only_partly_is_not_accepted(tmp_path):
    path = without_first_frame(write_vbr_mp3(tmp_path))
    assert 0 < sf.info(path).frames < 40000  # libsndfile's guess from the first frame's bitrate
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(path)
    assert err.value.reason == "unreadable"
    decoded, walked = (int(word) for word in err.value.detail.split()[2:5:2])
    assert decoded == sf.info(path).frames and walked >= 48000
    assert err.value.detail.startswith(f"decoded only {decoded} of {walked} frames counted from the MPEG frame "
                                       f"headers: a VBR MP3 without a Xing/Info header")
    with pytest.raises(audio.BadAudio) as err:
        audio.load_checked(path, 16000)
    assert err.value.reason == "unreadable"


@pytest.mark.parametrize("id3", [False, True])
def test_a_vbr_mp3_without_xing_header_cut_in_half_is_truncated(tmp_path, id3):
    path = without_first_frame(write_vbr_mp3(tmp_path))
    if id3:  # an ID3v2 tag in front (10-byte header, syncsafe size 30): the walk starts after it
        path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x1e" + b"\x00" * 30 + path.read_bytes())
    cut = cut_in_half_of(path)
    with pytest.raises(audio.BadAudio) as err:
        audio.decode(cut)
    assert err.value.reason == "truncated"
    decoded, walked = (int(word) for word in err.value.detail.split()[1:4:2])
    assert decoded < walked and 24000 < walked < 48000  # more tone than noise frames fit in half the bytes
    assert "frames counted from the MPEG frame headers; the last frame is cut short" in err.value.detail


def cut_in_half_of(path):
    out = path.with_name("half_" + path.name)
    out.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    return out


def test_a_cbr_mp3_without_info_header_is_read_whole(tmp_path):
    path = tmp_path / "cbr.mp3"
    sf.write(path, tone_then_noise(), 16000, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
    data, info = audio.decode(without_first_frame(path))
    assert data.shape[0] >= 48000 and info.frames == data.shape[0]
