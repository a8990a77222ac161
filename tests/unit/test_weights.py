"""Where model weights may come from, checked before any job; downloaded weights re-checked on every load."""

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from audioprobe import models
from audioprobe.io.download import WeightsChanged, verify_weights
from tests.conftest import REPO, unfolded_yamnet_variables

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
RECORDED_SHA256 = SCHEMA["$defs"]["model"]["allOf"][0]["then"]["properties"]["sha256"]["default"]


# --- models.<name>.weights before any job (rules/common.smk calls check_weights_setting) ----------------------

def test_accepted_weights_settings(tmp_path):
    (tmp_path / "yamnet.tflite").write_bytes(b"x")
    (tmp_path / "yamnet.h5").write_bytes(b"x")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"x")
    assert models.check_weights_setting("yamnet", None) == "download"
    assert models.check_weights_setting("yamnet", "https://tfhub.dev/google/yamnet/1") == "hub"
    assert models.check_weights_setting("yamnet", str(tmp_path / "yamnet.tflite")) == "file"
    assert models.check_weights_setting("yamnet", str(tmp_path / "yamnet.h5")) == "file"
    assert models.check_weights_setting("yamnet", str(tmp_path / "saved")) == "saved_model"


@pytest.mark.parametrize("case, problem", [
    ("missing typo", "does not exist"),
    ("present typo", "is a file, but not a .tflite, .h5, .hdf5 file"),
    ("missing tflite", "does not exist"),
    ("folder without saved_model.pb", "is a folder without saved_model.pb"),
    ("missing folder", "does not exist"),
])
def test_a_weights_setting_that_is_no_weights_is_refused_naming_key_path_and_forms(tmp_path, case, problem):
    path = {"missing typo": tmp_path / "yamnet.tflit", "present typo": tmp_path / "yamnet.tflit",
            "missing tflite": tmp_path / "nowhere" / "yamnet.tflite", "folder without saved_model.pb": tmp_path,
            "missing folder": tmp_path / "yamnet_savedmodel"}[case]
    if case == "present typo":
        path.write_bytes(b"TFL3 not really")
    with pytest.raises(models.WeightsSettingError) as err:
        models.check_weights_setting("mine", str(path))
    message = str(err.value)
    assert message.startswith(f"models.mine.weights: {path} {problem}")
    for form in (".tflite", ".h5", "SavedModel folder", "saved_model.pb", "http(s) TF Hub handle", "null"):
        assert form in message


def test_a_relative_path_that_does_not_exist_names_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(models.WeightsSettingError, match=re.escape(f"yamnet.tflit does not exist (relative to {tmp_path})")):
        models.check_weights_setting("yamnet", "yamnet.tflit")


@pytest.mark.parametrize("text", ["null", "~"])
def test_a_null_read_as_text_from_the_command_line_says_so(tmp_path, monkeypatch, text):
    """--config models='{"yamnet": {"weights": null}}' hands the workflow the string 'null' (a path is a string,
    so it is not coerced): the error must say why, and how to ask for the download."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(models.WeightsSettingError) as err:
        models.check_weights_setting("yamnet", text)
    message = str(err.value)
    assert message.startswith(f"models.yamnet.weights: {text} does not exist (relative to {tmp_path}) (--config "
                              f"reads a nested null as the string {text!r}: to let rule download_model_file fetch the "
                              "weights, set it to null in a --configfile, or leave it out).")
    with pytest.raises(models.WeightsSettingError) as err:
        models.check_weights_setting("yamnet", "nul")
    assert "--config reads a nested null" not in str(err.value)


def test_a_typo_at_job_time_is_missing_weights_not_a_tensorflow_hub_import(tmp_path):
    """``yamnet.tflit`` used to go down the TF Hub path and fail with No module named 'pkg_resources'."""
    from audioprobe.models import yamnet_weights

    typo = tmp_path / "yamnet.tflit"
    typo.write_bytes(b"x")
    with pytest.raises(yamnet_weights.MissingWeights, match=r"models\.yamnet\.weights: .*yamnet\.tflit is a file, but not"):
        yamnet_weights.load_weights(str(typo))
    with pytest.raises(yamnet_weights.MissingWeights, match=r"models\.other\.weights: .*does not exist"):
        yamnet_weights.load_weights(str(tmp_path / "gone"), "models.other.weights")


# --- sha256 on every load ---------------------------------------------------------------------------------------

def test_verify_weights_returns_the_digest_or_says_what_to_do(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"some weights")
    good = hashlib.sha256(b"some weights").hexdigest()
    assert verify_weights(path, good, "models.mine") == good
    path.write_bytes(b"some weightz")
    bad = hashlib.sha256(b"some weightz").hexdigest()
    with pytest.raises(WeightsChanged) as err:
        verify_weights(path, good, "models.mine")
    message = str(err.value)
    for part in (str(path), good, bad, "models.mine.sha256", f"Delete {path}", "set models.mine.weights",
                 "not checked"):
        assert part in message


def test_verify_weights_serves_weights_shipped_in_a_package(tmp_path):
    """A package's own weights: the digest is recorded in the package, and the remedy is to reinstall it."""
    path = tmp_path / "site-packages" / "somepkg" / "full.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered")
    with pytest.raises(WeightsChanged, match="somepkg's WEIGHTS_SHA256 records 0{64}.*pip install --force-reinstall"):
        verify_weights(path, "0" * 64, "models.crepe", recorded_in="somepkg's WEIGHTS_SHA256",
                       remedy="Reinstall it: pip install --force-reinstall somepkg.")


def test_jobs_load_weights_only_through_models_load():
    """The sha256 check lives in audioprobe.models.load: no job script or step reads weights around it."""
    bypass = re.compile(r"yamnet_weights|from_tflite|from_hub|from_saved_model|\bYamnet\(|tf\.lite\.Interpreter|hub\.load")
    files = [p for p in (REPO / "audioprobe").rglob("*.py") if "models" not in p.relative_to(REPO / "audioprobe").parts]
    files += list((REPO / "workflow" / "scripts").glob("*.py"))
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in files
                 for i, line in enumerate(p.read_text().splitlines(), start=1) if bypass.search(line)]
    assert not offenders


# --- with TensorFlow and the real export --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def weights(tf, yamnet_tflite):
    from audioprobe.models import yamnet_weights

    return yamnet_weights.load_weights(str(yamnet_tflite))


def downloaded_copy(yamnet_tflite, root: Path) -> Path:
    path = root / "resources" / "models" / "yamnet" / "yamnet.tflite"
    path.parent.mkdir(parents=True)
    shutil.copyfile(yamnet_tflite, path)
    return path


DOWNLOADED = {"kind": "yamnet", "weights": None, "numerics": "float", "sha256": RECORDED_SHA256}


def test_the_shared_export_is_the_one_the_config_records(yamnet_tflite):
    from audioprobe.io.download import sha256_of

    assert sha256_of(yamnet_tflite) == RECORDED_SHA256


def test_downloaded_weights_load_when_untouched(tf, yamnet_tflite, tmp_path):
    path = downloaded_copy(yamnet_tflite, tmp_path)
    model = models.load("yamnet", DOWNLOADED, str(path))
    assert model.weights_sha256 == RECORDED_SHA256


def test_downloaded_weights_are_hashed_once_per_load(tf, yamnet_tflite, tmp_path, monkeypatch):
    """verify_weights computes the digest; loading the TFLite export reuses it instead of hashing again."""
    from audioprobe.io import download
    from audioprobe.models import yamnet_weights

    path = downloaded_copy(yamnet_tflite, tmp_path)
    hashed = []

    def counting(real):
        return lambda file: hashed.append(str(file)) or real(file)

    monkeypatch.setattr(download, "sha256_of", counting(download.sha256_of))
    monkeypatch.setattr(yamnet_weights, "sha256_of", counting(yamnet_weights.sha256_of))
    model = models.load("yamnet", DOWNLOADED, str(path))
    assert hashed == [str(path)] and model.weights_sha256 == RECORDED_SHA256
    hashed.clear()
    models.load("yamnet", {**DOWNLOADED, "weights": str(path)}, str(path))  # the user's own: hashed for the record
    assert hashed == [str(path)]


def test_tampered_downloaded_weights_stop_the_job_saying_what_to_do(tf, yamnet_tflite, tmp_path):
    path = downloaded_copy(yamnet_tflite, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    tampered = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(WeightsChanged) as err:
        models.load("yamnet", DOWNLOADED, str(path))
    message = str(err.value)
    for part in (str(path), tampered, RECORDED_SHA256, "models.yamnet.sha256", f"Delete {path}",
                 "set models.yamnet.weights to a file of your own"):
        assert part in message
    # the same file named in models.yamnet.weights is the user's own: not checked against the recorded digest
    own = models.load("yamnet", {**DOWNLOADED, "weights": str(path)}, str(path))
    assert own.weights_sha256 == tampered


def test_the_sha256_check_costs_milliseconds(yamnet_tflite):
    import time

    start = time.perf_counter()
    verify_weights(yamnet_tflite, RECORDED_SHA256, "models.yamnet")
    assert time.perf_counter() - start < 0.5  # about 5-15 ms for the 4 MB export


# --- SavedModel folders and TF Hub -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_model(tf, weights, tmp_path_factory):
    folder = tmp_path_factory.mktemp("savedmodel") / "yamnet"
    module = tf.Module()
    module.weights_list = [tf.Variable(value, name=name) for name, value in unfolded_yamnet_variables(weights).items()]
    tf.saved_model.save(module, str(folder))
    assert (folder / "saved_model.pb").is_file()
    return folder


def assert_same_network(tf, loaded, weights):
    from audioprobe.models.yamnet import Yamnet

    for ours, theirs in zip(loaded.layers, weights.layers):
        for part in theirs:
            np.testing.assert_allclose(ours[part][0], theirs[part][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(ours[part][1], theirs[part][1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.logits[0], weights.logits[0])
    clip = np.random.default_rng(1).normal(scale=0.1, size=(1, 15600)).astype(np.float32)
    ours = Yamnet(loaded, numerics="float").activations(clip, ["layer14"])["layer14"]
    theirs = Yamnet(weights, numerics="float").activations(clip, ["layer14"])["layer14"]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-3, atol=1e-4)


def test_a_savedmodel_folder_loads_without_tensorflow_hub(tf, saved_model, weights, monkeypatch):
    import sys

    from audioprobe.models import yamnet_weights

    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # importing it would fail
    assert models.check_weights_setting("yamnet", str(saved_model)) == "saved_model"
    loaded = yamnet_weights.load_weights(str(saved_model))
    assert len(loaded.sha256) == 64 and loaded.source == str(saved_model)
    assert_same_network(tf, loaded, weights)
    model = models.load("yamnet", {**DOWNLOADED, "weights": str(saved_model)}, str(saved_model))
    assert model.weights_sha256 == loaded.sha256


def test_tensorflow_hub_imports_and_loads_the_savedmodel(tf, saved_model, weights):
    """The pinned setuptools keeps pkg_resources, which tensorflow_hub 0.16.1 imports; offline, hub resolves
    and loads a local folder the way it loads a downloaded handle."""
    from audioprobe.models import yamnet_weights

    hub = yamnet_weights.import_hub()
    assert hub.resolve(str(saved_model)) == str(saved_model)
    loaded = yamnet_weights.from_hub(str(saved_model))
    assert loaded.sha256 == yamnet_weights.from_saved_model(saved_model).sha256
    assert_same_network(tf, loaded.check(), weights)


def test_an_unreachable_hub_handle_says_what_to_set(tf, monkeypatch):
    from audioprobe.models import yamnet_weights

    hub = yamnet_weights.import_hub()

    def offline(handle):
        raise OSError("network is unreachable")

    monkeypatch.setattr(hub, "load", offline)
    with pytest.raises(yamnet_weights.MissingWeights, match=r"models\.mine\.weights: could not load YAMNet from TF Hub "
                                                             r"handle 'https://tfhub\.dev/google/yamnet/1'.*Offline"):
        yamnet_weights.load_weights("https://tfhub.dev/google/yamnet/1", "models.mine.weights")


def test_without_pkg_resources_tensorflow_hub_says_what_to_install(monkeypatch):
    import sys

    from audioprobe.models import yamnet_weights

    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    with pytest.raises(ImportError, match=r"setuptools>=77\.0\.3,<81"):
        yamnet_weights.import_hub()
