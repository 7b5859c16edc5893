"""mach_tools deploy against a small stand-in for the plugin's lifecycle endpoints (the real node runs it in integ-test)."""
import base64
import hashlib
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mach_tools import deploy
from mach_tools.data import UserError


class FakeLifecycle(BaseHTTPRequestHandler):
    chunks = {}
    registered = {}

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

    def do_POST(self):
        if self.path == "/_plugins/_mach/uploads":
            return self._reply(200, {"upload_id": "u1"})
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
            data = base64.b64decode(body["data"])
            if hashlib.sha256(data).hexdigest() != body["sha256"]:
                return self._reply(400, {"error": "corrupt chunk"})
            FakeLifecycle.chunks[int(self.path.rsplit("/", 1)[1])] = data
            return self._reply(200, {"bytes": len(data)})
        return self._reply(200, {"acknowledged": True})


@pytest.fixture()
def server():
    FakeLifecycle.chunks, FakeLifecycle.registered = {}, {}
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
