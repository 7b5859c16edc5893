"""Deploy a bundle to a cluster over the plugin's REST lifecycle: chunked upload, register, deploy, alias.

The upload is what a bundle larger than one HTTP request needs: the zip is cut into chunks, each
sent as base64 with its own SHA-256 (the node refuses a corrupt chunk at once), then `_register`
names the chunk count and the whole zip's SHA-256; the node validates the whole bundle before
anything is registered.
"""
from __future__ import annotations

import base64
import hashlib
import math
import os
import sys
import tempfile
import zipfile
from typing import Optional

from mach_tools.data import UserError
from mach_tools.engine_eval import Node


def zip_bundle(bundle: str, out_path: str) -> str:
    """A bundle directory as a zip of its plain files at the root (spec/bundle-format.md); a .zip is used as is."""
    if os.path.isfile(bundle):
        return bundle
    if not os.path.isfile(os.path.join(bundle, "mach.json")):
        raise UserError(f"{bundle} is not a bundle directory (no mach.json) or a bundle zip")
    with zipfile.ZipFile(out_path, "w", zipfile.ZIP_STORED) as z:  # ONNX weights hardly compress
        for name in sorted(os.listdir(bundle)):
            path = os.path.join(bundle, name)
            if os.path.isfile(path) and not name.startswith("."):
                z.write(path, arcname=name)
    return out_path


def deploy(url: str, bundle: str, model_id: str, chunk_mb: float = 8.0, deploy_it: bool = True,
           alias: Optional[str] = None, progress: bool = True) -> dict:
    """Uploads, registers (and deploys, and points `alias` to) a bundle; returns the register reply."""
    chunk_bytes = int(chunk_mb * (1 << 20))
    if not 1 <= chunk_bytes <= 16 << 20:
        raise UserError(f"--chunk-mb must be > 0 and at most 16, got {chunk_mb}")
    node = Node(url, timeout=600.0)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = zip_bundle(bundle, os.path.join(tmp, "bundle.zip"))
        size = os.path.getsize(zip_path)
        chunks = max(1, math.ceil(size / chunk_bytes))
        whole = hashlib.sha256()
        upload_id = node.call("POST", "/_plugins/_mach/uploads")["upload_id"]
        from tqdm import tqdm
        with open(zip_path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {model_id}",
                                             disable=not progress, file=sys.stderr) as bar:
            for i in range(chunks):
                data = f.read(chunk_bytes)
                whole.update(data)
                node.call("PUT", f"/_plugins/_mach/uploads/{upload_id}/{i}",
                          {"data": base64.b64encode(data).decode("ascii"), "sha256": hashlib.sha256(data).hexdigest()})
                bar.update(len(data))
    reply = node.call("POST", f"/_plugins/_mach/models/{model_id}/_register",
                      {"upload_id": upload_id, "chunks": chunks, "sha256": whole.hexdigest(), "deploy": deploy_it})
    if alias:
        node.call("PUT", f"/_plugins/_mach/aliases/{alias}", {"model_id": model_id})
        reply["alias"] = alias
    return reply


def add_arguments(p) -> None:
    p.add_argument("--url", default="http://localhost:9200", help="a node of the cluster (default %(default)s)")
    p.add_argument("--bundle", required=True, help="bundle directory or zip")
    p.add_argument("--id", required=True, help="model id to register")
    p.add_argument("--chunk-mb", type=float, default=8.0, help="upload chunk size in MB, at most 16 (default %(default)s)")
    p.add_argument("--no-deploy", action="store_true", help="register only")
    p.add_argument("--alias", help="point this alias to the model once deployed")
    p.add_argument("--no-progress", action="store_true")
