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
import time
import zipfile
from typing import Optional

from mach_tools.bundle import sha256_file
from mach_tools.data import UserError
from mach_tools.engine_eval import HttpError, Node


def zip_bundle(bundle: str, out_path: str) -> str:
    """A bundle directory as a zip of its plain files at the root (spec/bundle-format.md); a .zip is used as is."""
    if os.path.isfile(bundle):
        return bundle
    if not os.path.isfile(os.path.join(bundle, "mach.json")):
        raise UserError(f"{bundle} is not a bundle directory (no mach.json) or a bundle zip")
    # Reproducible: fixed timestamps and order, so the same files always give the same sha256 (the
    # cluster's record of a registered bundle) and a redeploy of an unchanged bundle is recognized.
    with zipfile.ZipFile(out_path, "w", zipfile.ZIP_STORED) as z:  # ONNX weights hardly compress
        for name in sorted(os.listdir(bundle)):
            path = os.path.join(bundle, name)
            if os.path.isfile(path) and not name.startswith("."):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with open(path, "rb") as src, z.open(info, "w") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    return out_path


def ensure_deployed(url: str, bundle: str, model_id: str, progress: bool = True) -> dict:
    """Makes `model_id` serve `bundle`: uploads and deploys it unless the cluster already has this exact
    bundle under that id (then only deploys it). A different bundle under the id is an error."""
    node = Node(url, timeout=600.0)
    current = node.call("GET", f"/_plugins/_mach/models/{model_id}", ok404=True)
    if current is None or "sha256" not in current:  # unknown, or only a bundle in a node's models dir
        return deploy(url, bundle, model_id, progress=progress)
    with tempfile.TemporaryDirectory() as tmp:
        sha = sha256_file(zip_bundle(bundle, os.path.join(tmp, "bundle.zip")))
    if sha != current["sha256"]:
        raise UserError(f"model [{model_id}] is registered with another bundle (sha256 {current['sha256'][:12]}..., "
                        f"this one {sha[:12]}...): choose another --model-id, or DELETE _plugins/_mach/models/{model_id}")
    return node.call("POST", f"/_plugins/_mach/models/{model_id}/_deploy")


def put_chunk(node, upload_id: str, i: int, data: bytes, retry_wait: float = 2.0, tries: int = 6) -> None:
    """PUTs chunk i; a 429 (the node's circuit breaker: its heap is busy, e.g. loading a model) is
    retried after 2, 4, 8, ... seconds. Safe: a chunk's same bytes sent again change nothing."""
    body = {"data": base64.b64encode(data).decode("ascii"), "sha256": hashlib.sha256(data).hexdigest()}
    for attempt in range(tries):
        try:
            node.call("PUT", f"/_plugins/_mach/uploads/{upload_id}/{i}", body)
            return
        except HttpError as e:
            if e.status != 429 or attempt == tries - 1:
                raise
            print(f"chunk {i}: the node is busy (HTTP 429), retrying in {retry_wait * 2 ** attempt:g}s", file=sys.stderr)
            time.sleep(retry_wait * 2 ** attempt)


def deploy(url: str, bundle: str, model_id: str, chunk_mb: float = 8.0, deploy_it: bool = True,
           alias: Optional[str] = None, progress: bool = True, retry_wait: float = 2.0) -> dict:
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
                                             disable=None if progress else True, file=sys.stderr) as bar:  # None: off unless a terminal
            for i in range(chunks):
                data = f.read(chunk_bytes)
                whole.update(data)
                put_chunk(node, upload_id, i, data, retry_wait)
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
