import hashlib
import http.server
import threading

import pytest

from audioprobe import config
from audioprobe.io.download import DownloadError, download


def test_defaults_fill_nested_entries_by_kind():
    cfg = {"datasets": {"a": {"kind": "maas-synth"}, "b": {"kind": "folder", "root": "/x"}},
           "models": {"y": {"kind": "yamnet"}}, "activations": {"runs": [{"model": "y", "dataset": "a"}]}}
    config.fill_defaults(cfg, config.load_schema())
    assert cfg["datasets"]["a"]["takes"] == 5 and cfg["datasets"]["a"]["materials"][0] == "wood"
    assert cfg["datasets"]["b"]["labels"] == {"scheme": "folder", "path_column": "path"}
    assert "takes" not in cfg["datasets"]["b"]
    assert cfg["models"]["y"]["numerics"] == "float" and cfg["activations"]["pool"]["stat"] == "mean"
    assert cfg["datasets"]["a"]["on_bad_input"] == "skip"


def test_defaults_keep_values_that_are_set():
    cfg = {"datasets": {"a": {"kind": "commands-synth", "words": ["go"], "seed": 9}}, "models": {},
           "activations": {"runs": [], "batch_size": 4}}
    config.fill_defaults(cfg, config.load_schema())
    assert cfg["datasets"]["a"]["words"] == ["go"] and cfg["datasets"]["a"]["seed"] == 9
    assert cfg["activations"]["batch_size"] == 4


def test_references_name_the_key():
    cfg = {"datasets": {"a": {}}, "models": {"y": {"kind": "yamnet"}},
           "activations": {"runs": [{"model": "z", "dataset": "a"}], "layers": "all"}}
    with pytest.raises(config.ConfigError, match=r"activations.runs\[0\].model: 'z'"):
        config.check_references(cfg, lambda kind: ["layer1"])


@pytest.fixture
def server(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"pretend weights" * 100)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_checks_the_sha256(server, tmp_path):
    good = hashlib.sha256(b"pretend weights" * 100).hexdigest()
    target = tmp_path / "out" / "w.bin"
    download(f"{server}/weights.bin", target, good, config_key="models.m.weights")
    assert target.read_bytes() == b"pretend weights" * 100
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(DownloadError, match="expected 0000"):
        download(f"{server}/weights.bin", bad, "0" * 64, config_key="models.m.weights")
    assert not bad.exists() and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["w.bin"]


def test_an_unreachable_download_says_where_to_put_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="models.m.weights") as err:
        download(f"{server}/missing.bin", tmp_path / "w.bin", "0" * 64, config_key="models.m.weights")
    assert str(tmp_path / "w.bin") in str(err.value)
