"""mach_tools deploy against a small stand-in for the plugin's lifecycle endpoints (the real node runs it in integ-test)."""
import base64
import hashlib
import json
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mach_tools import deploy
from mach_tools.bundle import sha256_file
from mach_tools.data import UserError


class FakeLifecycle(BaseHTTPRequestHandler):
    chunks = {}
    registered = {}
    deploys = 0
    busy = 0  # answer this many chunk PUTs with 429 (the circuit breaker) first

    def log_message(self, *a):
        pass

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def do_GET(self):
        model = self.path.split("/")[4]
        if model not in FakeLifecycle.registered:
            return self._reply(404, {"error": "not found"})
        return self._reply(200, {"model_id": model, "sha256": hashlib.sha256(FakeLifecycle.registered[model]).hexdigest()})

    def do_POST(self):
        if self.path == "/_plugins/_mach/uploads":
            return self._reply(200, {"upload_id": "u1"})
        if self.path.endswith("/_deploy"):
            FakeLifecycle.deploys += 1
            return self._reply(200, {"state": "deployed"})
        body = self._body()
        model = self.path.split("/")[4]
        parts = FakeLifecycle.chunks
        data = b"".join(parts[i] for i in range(body["chunks"]))
        if hashlib.sha256(data).hexdigest() != body["sha256"]:
            return self._reply(400, {"error": "checksum mismatch"})
        FakeLifecycle.registered[model] = data
        return self._reply(201, {"model_id": model, "state": "deployed" if body["deploy"] else "registered"})

    def do_PUT(self):
        body = self._body()
        if "/uploads/" in self.path:
            if FakeLifecycle.busy > 0:
                FakeLifecycle.busy -= 1
                return self._reply(429, {"error": {"type": "circuit_breaking_exception"}})
            data = base64.b64decode(body["data"])
            if hashlib.sha256(data).hexdigest() != body["sha256"]:
                return self._reply(400, {"error": "corrupt chunk"})
            FakeLifecycle.chunks[int(self.path.rsplit("/", 1)[1])] = data
            return self._reply(200, {"bytes": len(data)})
        return self._reply(200, {"acknowledged": True})


@pytest.fixture()
def server():
    FakeLifecycle.chunks, FakeLifecycle.registered, FakeLifecycle.deploys, FakeLifecycle.busy = {}, {}, 0, 0
    httpd = HTTPServer(("127.0.0.1", 0), FakeLifecycle)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def _bundle(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "mach.json").write_text('{"format_version": 1}')
    (d / "model.onnx").write_bytes(bytes(range(256)) * 40)  # 10 KB
    (d / ".hidden").write_text("not part of the bundle")
    return d


def test_uploads_in_chunks_and_the_node_gets_the_exact_zip(server, tmp_path):
    d = _bundle(tmp_path)
    reply = deploy.deploy(server, str(d), "m1", chunk_mb=3000 / (1 << 20), progress=False)
    assert reply["state"] == "deployed"
    got = FakeLifecycle.registered["m1"]
    assert len(FakeLifecycle.chunks) == -(-len(got) // 3000) >= 4
    zpath = tmp_path / "got.zip"
    zpath.write_bytes(got)
    with zipfile.ZipFile(zpath) as z:
        assert sorted(z.namelist()) == ["mach.json", "model.onnx"]  # files at the root, no hidden files
        assert z.read("model.onnx") == (d / "model.onnx").read_bytes()


def test_bad_input_is_a_user_error(server, tmp_path):
    with pytest.raises(UserError, match="not a bundle"):
        deploy.deploy(server, str(tmp_path), "m1", progress=False)
    with pytest.raises(UserError, match="chunk-mb"):
        deploy.deploy(server, str(_bundle(tmp_path)), "m1", chunk_mb=17, progress=False)
    with pytest.raises(UserError, match="cannot reach"):
        deploy.deploy("http://127.0.0.1:9", str(_bundle(tmp_path / "x") if (tmp_path / "x").mkdir() is None else None), "m1", progress=False)


def test_the_zip_is_reproducible_and_an_unchanged_bundle_is_not_uploaded_again(server, tmp_path):
    d = _bundle(tmp_path)
    a = sha256_file(deploy.zip_bundle(str(d), str(tmp_path / "a.zip")))
    os.utime(d / "model.onnx", (0, 0))  # other timestamps, same files
    assert sha256_file(deploy.zip_bundle(str(d), str(tmp_path / "b.zip"))) == a
    deploy.ensure_deployed(server, str(d), "m1", progress=False)  # unknown: uploaded
    uploaded = dict(FakeLifecycle.chunks)
    FakeLifecycle.chunks.clear()
    deploy.ensure_deployed(server, str(d), "m1", progress=False)  # same bundle: only deployed
    assert FakeLifecycle.chunks == {} and FakeLifecycle.deploys == 1 and uploaded
    (d / "model.onnx").write_bytes(b"other weights")
    with pytest.raises(UserError, match="registered with another bundle"):
        deploy.ensure_deployed(server, str(d), "m1", progress=False)


def test_a_busy_node_is_retried_then_given_up(server, tmp_path):
    d = _bundle(tmp_path)
    FakeLifecycle.busy = 3  # three 429s in a row, then the node takes chunks again
    reply = deploy.deploy(server, str(d), "m2", chunk_mb=3000 / (1 << 20), progress=False, retry_wait=0.01)
    assert reply["state"] == "deployed" and FakeLifecycle.busy == 0
    zpath = tmp_path / "got.zip"
    zpath.write_bytes(FakeLifecycle.registered["m2"])
    with zipfile.ZipFile(zpath) as z:
        assert z.read("model.onnx") == (d / "model.onnx").read_bytes()
    FakeLifecycle.busy = 100  # a node that stays busy: give up after the last try, with the node's answer
    with pytest.raises(deploy.UserError, match="HTTP 429"):
        deploy.deploy(server, str(d), "m3", chunk_mb=3000 / (1 << 20), progress=False, retry_wait=0.001)
