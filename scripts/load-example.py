#!/usr/bin/python3
"""Load a chunk set the way the streaming_weights library does, and check it.

  /usr/bin/python3 scripts/load-example.py DIR [--sums FILE] [--tensors FILE]
                                               [--require-torch]

DIR is the chunk set's directory, typically inside a chunkfs mount.  The
sequence is the library's FilesystemBackend + model loader (see
/work/shared/CHUNK-LAYOUT.md): chunk_info.json first (exists, load), then
for each chunk in manifest order: exists, load (read the whole file as
bytes) and torch.load(BytesIO(bytes), map_location="cpu").

Checks: every chunk's byte count against its size_mb (bytes / 2**20, exact
for the example), its sha256 against --sums (sha256sum format; default
examples/bert-tiny.sha256), and every tensor's dtype, shape and sha256
against --tensors (default examples/bert-tiny.tensors.json, written by
scripts/make-example.py).

Without torch (Debian: python3-torch), the bytes are still loaded and
checked and the script says clearly that torch.load was skipped; with
--require-torch that is an error (exit 2).  Exit 0 only if everything
matched.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import time

try:
    import torch
except ImportError:
    torch = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def exists(path):
    """The library's FilesystemBackend.exists()."""
    return os.path.exists(path)


def load(path):
    """The library's FilesystemBackend.load(): the whole file as bytes."""
    with open(path, "rb") as f:
        return f.read()


def read_sums(path):
    sums = {}
    with open(path) as f:
        for line in f:
            digest, name = line.rstrip("\n").split("  ", 1)
            sums[name] = digest
    return sums


def check_state_dict(fname, sd, want):
    if list(sd.keys()) != list(want.keys()):
        fail("%s: keys %s, expected %s" % (fname, list(sd.keys()), list(want.keys())))
    for key, t in sd.items():
        w = want[key]
        dtype = str(t.dtype).replace("torch.", "")
        got = hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
        if dtype != w["dtype"] or list(t.shape) != w["shape"] or got != w["sha256"]:
            fail("%s: %s is %s %s sha256 %s, expected %s %s %s"
                 % (fname, key, dtype, list(t.shape), got, w["dtype"], w["shape"],
                    w["sha256"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--sums", default=os.path.join(REPO, "examples", "bert-tiny.sha256"))
    ap.add_argument("--tensors",
                    default=os.path.join(REPO, "examples", "bert-tiny.tensors.json"))
    ap.add_argument("--require-torch", action="store_true")
    args = ap.parse_args()

    if torch is None and args.require_torch:
        print("load-example: /usr/bin/python3 has no torch (apt-get install python3-torch)",
              file=sys.stderr)
        return 2
    sums = read_sums(args.sums)
    with open(args.tensors) as f:
        tensors = json.load(f)

    t0 = time.monotonic()
    manifest = os.path.join(args.dir, "chunk_info.json")
    if not exists(manifest):
        fail("%s does not exist" % manifest)
    info = json.loads(load(manifest))
    chunks = info.get("chunks")
    if not isinstance(chunks, dict) or not chunks:
        fail("chunk_info.json has no \"chunks\" object")
    total = 0
    n_tensors = 0
    for name, c in chunks.items():
        fname = c["file"]
        if os.path.isabs(fname) or ".." in fname.split("/"):
            fail("chunk %s: file %r leaves the directory" % (name, fname))
        path = os.path.join(args.dir, fname)
        if not exists(path):
            fail("chunk %s: %s does not exist" % (name, path))
        data = load(path)
        if len(data) != round(c["size_mb"] * 1024 * 1024):
            fail("chunk %s: %d bytes, chunk_info.json says size_mb %r"
                 % (name, len(data), c["size_mb"]))
        digest = hashlib.sha256(data).hexdigest()
        if sums.get(fname) != digest:
            fail("chunk %s: sha256 %s, expected %s" % (name, digest, sums.get(fname)))
        line = "  %-11s %-14s %9d bytes  sha256 ok" % (name, fname, len(data))
        if torch is not None:
            sd = torch.load(io.BytesIO(data), map_location="cpu")
            if fname not in tensors:
                fail("chunk %s: no recorded tensors for %s" % (name, fname))
            check_state_dict(fname, sd, tensors[fname])
            n_tensors += len(sd)
            line += ", torch.load: %d tensors ok" % len(sd)
        print(line)
        total += len(data)
    if abs(sum(c["size_mb"] for c in chunks.values()) - info.get("total_size_mb", -1)) > 1e-6:
        fail("total_size_mb %r differs from the chunks' sum" % info.get("total_size_mb"))
    secs = time.monotonic() - t0
    if torch is None:
        print("load-example: %d chunks (%d bytes) loaded in the library's order and match; "
              "torch.load SKIPPED: /usr/bin/python3 has no torch (install python3-torch, "
              "or run scripts/install-deps.sh test, to check the tensors too)"
              % (len(chunks), total))
    else:
        print("load-example: %d chunks (%d bytes, %d tensors) loaded with torch.load in the "
              "library's order in %.2f s; every value matches" % (len(chunks), total,
                                                                    n_tensors, secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
