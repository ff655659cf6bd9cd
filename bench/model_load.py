#!/usr/bin/python3
"""The Python side of bench/model_load.sh (run by it; see its header).

Subcommands (each prints one result line on stdout, messages on stderr):

  generate DIR LAYERS        the chunk set under DIR/model (the chunker's layout),
                             DIR/expected.json (checksums of every tensor)
  safetensors DIR MIB        DIR/st/model.safetensors of MIB MiB (numpy only) and
                             DIR/st-expected.json
  load-boto3 ENDPOINT BUCKET PREFIX EXPECTED [--ahead]
                             the library's S3 backend: head_object + get_object
                             + torch.load(BytesIO), one chunk at a time or one ahead
  load-files DIR EXPECTED [--ahead] [--add SECONDS]
                             the library's FilesystemBackend: Path.exists +
                             Path.read_bytes + torch.load(BytesIO)
  load-paths DIR EXPECTED    Path.exists + torch.load(path)
  memmap FILE EXPECTED COUNT numpy.memmap reads of COUNT seeded random tensors
  table RESULTS BASE MMBASE BYTES
                             the markdown table of the runs in RESULTS (a
                             directory); ratios to the cells BASE and MMBASE
                             (memmap rows); BYTES: the chunk set's size

A load prints "TOTAL FIRST STATUS": seconds for everything, seconds until
layer_0 was torch.loaded ("-" for memmap), and "ok" or "WRONG:<what>".  The
clock starts after the imports and the client's creation and stops when the
last chunk is loaded; the checksums are compared afterwards, untimed.
"""

import io
import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

# Bump when what generate or safetensors writes changes: it names the cache.
VERSION = "v1"

HIDDEN, INTER, VOCAB, POSITIONS, TYPES = 1024, 4096, 30522, 512, 2


def log(msg):
    print("model_load.py: " + msg, file=sys.stderr, flush=True)


def crc(buf):
    return zlib.crc32(memoryview(buf).cast("B"))


# --- the chunk set -----------------------------------------------------------

def layer_shapes():
    """A BertLayer's state dict: key -> shape."""
    h, i = HIDDEN, INTER
    d = {}
    for m in ("query", "key", "value"):
        d["attention.self.%s.weight" % m] = (h, h)
        d["attention.self.%s.bias" % m] = (h,)
    d["attention.output.dense.weight"] = (h, h)
    d["attention.output.dense.bias"] = (h,)
    d["attention.output.LayerNorm.weight"] = (h,)
    d["attention.output.LayerNorm.bias"] = (h,)
    d["intermediate.dense.weight"] = (i, h)
    d["intermediate.dense.bias"] = (i,)
    d["output.dense.weight"] = (h, i)
    d["output.dense.bias"] = (h,)
    d["output.LayerNorm.weight"] = (h,)
    d["output.LayerNorm.bias"] = (h,)
    return d


def chunk_shapes(layers):
    """[(chunk name, file name, {key: shape})] in the chunker's order."""
    h = HIDDEN
    out = [("embeddings", "embeddings.pt", {
        "word_embeddings.weight": (VOCAB, h),
        "position_embeddings.weight": (POSITIONS, h),
        "token_type_embeddings.weight": (TYPES, h),
        "LayerNorm.weight": (h,),
        "LayerNorm.bias": (h,),
    })]
    for n in range(layers):
        out.append(("layer_%d" % n, "layer_%d.pt" % n, layer_shapes()))
    out.append(("pooler", "pooler.pt", {"dense.weight": (h, h), "dense.bias": (h,)}))
    return out


def bert_config(layers):
    """What BertConfig(...).to_dict() holds for a BERT-large shape."""
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTER,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": POSITIONS,
        "model_type": "bert",
        "num_attention_heads": 16,
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.30.2",
        "type_vocab_size": TYPES,
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def tensor_crc(t):
    return crc(t.contiguous().view(-1).numpy())


def state_dict_sums(sd):
    """{key: [dtype, shape, crc32 of the bytes]} of a loaded state dict."""
    return {k: [str(v.dtype).replace("torch.", ""), list(v.shape), tensor_crc(v)] for k, v in sd.items()}


def generate(top, layers):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    model = Path(top) / "model"
    model.mkdir(parents=True, exist_ok=True)
    expected = {}
    chunks = {}
    t0 = time.monotonic()
    (model / "config.json").write_text(json.dumps(bert_config(layers), indent=2, sort_keys=True) + "\n")
    for seed, (name, fname, shapes) in enumerate(chunk_shapes(layers)):
        g = torch.Generator().manual_seed(1000 + seed)
        sd = {}
        for key, shape in shapes.items():
            # float32 weights as a model has them, then .half() as the
            # chunker's compress=True does
            sd[key] = (torch.randn(shape, generator=g) * 0.02).half()
        buf = io.BytesIO()
        torch.save(sd, buf)
        data = buf.getvalue()
        (model / fname).write_bytes(data)
        chunks[name] = {"file": fname, "size_mb": round(len(data) / 2**20, 3)}
        expected[fname] = state_dict_sums(sd)
    info = {
        "model_name": "bench/bert-large-shape",
        "model_type": "bert",
        "num_layers": layers,
        "chunks": chunks,
        "total_size_mb": round(sum(c["size_mb"] for c in chunks.values()), 3),
    }
    (model / "chunk_info.json").write_text(json.dumps(info, indent=2))  # last, as the chunker does
    (Path(top) / "expected.json").write_text(json.dumps(expected))
    size = sum(f.stat().st_size for f in model.iterdir())
    log("generated %d files, %d bytes, in %.1f s" % (len(chunks) + 2, size, time.monotonic() - t0))
    print(size)


# --- loading, the library's way --------------------------------------------------

class Timer:
    def __init__(self):
        self.t0 = time.monotonic()
        self.first = None
        self.sds = {}

    def loaded(self, name, fname, sd):
        self.sds[fname] = sd
        if name == "layer_0":
            self.first = time.monotonic() - self.t0


def verify(sds, expected_file):
    """"ok" or "WRONG:<first difference>"; every file of the set must be there."""
    expected = json.loads(Path(expected_file).read_text())
    bad = []
    for fname, want in expected.items():
        if fname not in sds:
            bad.append("%s missing" % fname)
            continue
        got = state_dict_sums(sds[fname])
        if got != want:
            keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            bad.append("%s:%s" % (fname, ",".join(keys[:3])))
    for fname in sds:
        if fname not in expected:
            bad.append("%s unexpected" % fname)
    if bad:
        log("WRONG BYTES: " + "; ".join(bad))
        return "WRONG:" + bad[0].replace(" ", "_")
    return "ok"


def run_load(exists, load, expected, ahead, add=0.0, torch_load=None):
    """The streaming loader's sequence over a backend (exists, load)."""
    import torch

    if torch_load is None:
        def torch_load(name, data):
            return torch.load(io.BytesIO(data), map_location="cpu")

    tm = Timer()
    if not exists("chunk_info.json"):
        raise SystemExit("chunk_info.json not found")
    info = json.loads(load("chunk_info.json"))
    order = [(name, c["file"]) for name, c in info["chunks"].items()]

    def fetch(fname):
        if not exists(fname):
            raise FileNotFoundError(fname)
        return load(fname)

    if ahead:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(fetch, order[0][1])
            for i, (name, fname) in enumerate(order):
                data = fut.result()
                if i + 1 < len(order):
                    fut = pool.submit(fetch, order[i + 1][1])
                tm.loaded(name, fname, torch_load(fname, data))
    else:
        for name, fname in order:
            tm.loaded(name, fname, torch_load(fname, fetch(fname)))
    total = time.monotonic() - tm.t0
    status = verify(tm.sds, expected)
    first = "%.3f" % (tm.first + add) if tm.first is not None else "-"
    print("%.3f %s %s" % (total + add, first, status))


def load_boto3(endpoint, bucket, prefix, expected, ahead):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
                      config=Config(s3={"addressing_style": "path"}))
    prefix = prefix.strip("/")

    def key(name):
        return "%s/%s" % (prefix, name) if prefix else name

    def exists(name):
        try:
            s3.head_object(Bucket=bucket, Key=key(name))
            return True
        except s3.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def load(name):
        return s3.get_object(Bucket=bucket, Key=key(name))["Body"].read()

    run_load(exists, load, expected, ahead)


def load_files(top, expected, ahead, add):
    root = Path(top)
    run_load(lambda n: (root / n).exists(), lambda n: (root / n).read_bytes(), expected, ahead, add)


def load_paths(top, expected):
    import torch

    root = Path(top)
    run_load(lambda n: (root / n).exists(),
             lambda n: (root / n).read_bytes() if n == "chunk_info.json" else n,
             expected, False,
             torch_load=lambda fname, path: torch.load(str(root / path), map_location="cpu"))


# --- safetensors -------------------------------------------------------------------

POOL = 8 << 20  # bytes of seeded random data every tensor is made from


def st_layout(size):
    """Tensors of 2-8 MiB (fp16, 1024 columns) filling SIZE bytes of data."""
    import random

    rnd = random.Random(7)
    tensors, off, i = [], 0, 0
    while off < size:
        rows = min(rnd.choice((1024, 1536, 2048, 2560, 3072, 4096)), (size - off) // (2 * HIDDEN))
        if rows <= 0:
            break
        n = rows * HIDDEN * 2
        tensors.append(("blocks.%d.%s" % (i // 4, ("q", "k", "v", "o")[i % 4]), [rows, HIDDEN], off, off + n))
        off += n
        i += 1
    return tensors


def safetensors(top, mib):
    import numpy as np

    t0 = time.monotonic()
    st = Path(top) / "st"
    st.mkdir(parents=True, exist_ok=True)
    layout = st_layout(mib << 20)
    hdr = {name: {"dtype": "F16", "shape": shape, "data_offsets": [s, e]} for name, shape, s, e in layout}
    hdr["__metadata__"] = {"format": "pt"}
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    pool = np.random.default_rng(11).integers(0, 2**63, POOL // 8, dtype=np.uint64)
    sums = {}
    tmp = st / "model.safetensors.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for i, (name, _, s, e) in enumerate(layout):
            # distinct bytes for every tensor: the pool xor its index
            data = pool[: (e - s) // 8] ^ np.uint64((i + 1) * 0x9E3779B97F4A7C15 % 2**64)
            sums[name] = crc(data)
            f.write(data.tobytes())
    os.replace(tmp, st / "model.safetensors")
    (Path(top) / "st-expected.json").write_text(json.dumps(sums))
    log("safetensors: %d tensors, %d MiB, in %.1f s" % (len(layout), mib, time.monotonic() - t0))
    print(len(layout))


def memmap(path, expected, count):
    import random

    import numpy as np

    t0 = time.monotonic()
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    picks = random.Random(1).sample(sorted(hdr), min(count, len(hdr)))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    got = {}
    for name in picks:
        t = hdr[name]
        s, e = t["data_offsets"]
        got[name] = np.array(mm[s:e].view(np.float16).reshape(t["shape"]))  # a copy: reads the pages
    total = time.monotonic() - t0
    del mm
    want = json.loads(Path(expected).read_text())
    bad = [k for k, a in got.items() if crc(a) != want.get(k)]
    if bad:
        log("WRONG BYTES in %d of %d tensors: %s" % (len(bad), len(got), ", ".join(bad[:5])))
    print("%.3f - %s" % (total, "WRONG:%d_tensors" % len(bad) if bad else "ok"))


# --- the table ------------------------------------------------------------------------

def median(vals):
    v = sorted(vals)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def table(results, base, memmap_base, set_bytes):
    """RESULTS/cells: "ID<TAB>label" lines in table order; run N of cell ID:
    RESULTS/ID.N.load (the load's line), ID.N.counters (the server's counters,
    JSON), ID.N.daemon ("CPU-SECONDS RSS-MIB", mount cells only)."""
    res = Path(results)
    cells = [line.split("\t", 1) for line in (res / "cells").read_text().splitlines() if line]

    def read(f):
        return f.read_text().strip() if f.exists() else ""

    rows = {}
    for cid, label in cells:
        runs = []
        for f in sorted(res.glob(cid + ".[0-9]*.load")):
            stem = str(f)[: -len(".load")]
            runs.append([read(f), read(Path(stem + ".counters")), read(Path(stem + ".daemon"))])
        rows[cid] = (label, runs)

    def stats(cid):
        label, runs = rows[cid]
        tot, first, req, cpu, rss, errs = [], [], {}, [], [], []
        for load, counters, daemon in runs:
            parts = load.split()
            if len(parts) != 3 or not parts[2] == "ok":
                errs.append(parts[2] if len(parts) == 3 else (load or "error"))
                if len(parts) != 3:
                    continue
            tot.append(float(parts[0]))
            if parts[1] != "-":
                first.append(float(parts[1]))
            if counters:
                c = json.loads(counters)
                t = {"GET": c.get("GET", 0), "HEAD": c.get("HEAD", 0), "LIST": c.get("ListObjectsV2", 0)}
                t["other"] = c.get("total", 0) - sum(t.values())
                for k, v in t.items():
                    req.setdefault(k, []).append(v)
            d = daemon.split()
            if len(d) == 2:
                cpu.append(float(d[0]))
                rss.append(float(d[1]))
        return label, tot, first, req, cpu, rss, errs

    def fmt_range(v):
        if not v:
            return ""
        if len(v) == 1:
            return "%.2f" % v[0]
        return "%.2f (%.2f-%.2f)" % (median(v), min(v), max(v))

    base_tot = median(stats(base)[1]) if base in rows else None
    mm_base = median(stats(memmap_base)[1]) if memmap_base in rows else None
    print("| way to load | total s (range) | first layer s | vs boto3 | GET | HEAD | LIST | other | daemon CPU s | daemon peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    wrong = 0
    for cid, _ in cells:
        label, tot, first, req, cpu, rss, errs = stats(cid)
        if any(e.startswith("WRONG") for e in errs):
            wrong += 1
            tcell = "**WRONG BYTES** (%s)" % ", ".join(sorted(set(e[6:] for e in errs if e.startswith("WRONG"))))
        elif errs and not tot:
            tcell = errs[0].replace("_", " ")
        else:
            tcell = fmt_range(tot) + (" (%d failed)" % len(errs) if errs else "")
        ref = mm_base if cid.startswith("memmap") else base_tot
        ratio = ""
        if tot and ref and not errs:
            ratio = "%.2f" % (median(tot) / ref) + (" (vs s3fs)" if cid.startswith("memmap") else "")
        fcell = "%.2f" % median(first) if first else ""
        rq = [("%d" % median(req[k]) if k in req else "") for k in ("GET", "HEAD", "LIST", "other")]
        cols = [label, tcell, fcell, ratio] + rq + ["%.2f" % median(cpu) if cpu else "",
                                                     "%.0f" % median(rss) if rss else ""]
        print("| " + " | ".join(cols) + " |")

    # the targets that compare other pairs than the ratio column
    def med(cid, what=1):
        if cid not in rows:
            return None
        st = stats(cid)
        return median(st[what]) if not st[6] else None

    notes = []
    for a, b, what in (("chunkfs-ahead", "boto3-ahead", "one ahead"),
                       ("paths-chunkfs", "boto3", "torch.load(path)"),
                       ("chunkfs-warm", "local", "warm"),
                       ("chunkfs-pin", "local", "warm with pin")):
        x, y = med(a), med(b)
        if x is not None and y:
            notes.append("%s %s / %s: %.2f" % (what, a, b, x / y))
    gib = set_bytes / 2**30
    for cid in ("chunkfs", "chunkfs-warm", "chunkfs-pin"):
        c = med(cid, 4)
        if c is not None:
            notes.append("%s daemon CPU per GiB: %.2f s" % (cid, c / gib))
    if notes:
        print()
        print("Also: " + "; ".join(notes) + ".")
    return wrong


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    flags = {a for a in args if a.startswith("--")}
    pos = [a for a in args if not a.startswith("--")]
    if cmd == "generate":
        generate(pos[0], int(pos[1]))
    elif cmd == "safetensors":
        safetensors(pos[0], int(pos[1]))
    elif cmd == "load-boto3":
        load_boto3(pos[0], pos[1], pos[2], pos[3], "--ahead" in flags)
    elif cmd == "load-files":
        add = 0.0
        if "--add" in flags:
            add = float(args[args.index("--add") + 1])
            pos.remove(args[args.index("--add") + 1])
        load_files(pos[0], pos[1], "--ahead" in flags, add)
    elif cmd == "load-paths":
        load_paths(pos[0], pos[1])
    elif cmd == "memmap":
        memmap(pos[0], pos[1], int(pos[2]))
    elif cmd == "table":
        return 3 if table(pos[0], pos[1], pos[2], int(pos[3])) else 0
    elif cmd == "version":
        print(VERSION)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
