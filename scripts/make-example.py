#!/usr/bin/python3
"""Generate the example chunk store examples/bert-tiny/ and examples/bert-tiny.sha256.

Python standard library only; the output is byte-for-byte deterministic, so
running it again reproduces the committed files (use --check to verify that).

The store looks like a small BERT checkpoint split into chunks:

  config.json        BERT-like model config
  embeddings.pt      word/position/token-type embeddings + LayerNorm (~1.5 MiB)
  layer_0.pt         encoder layer 0 (~0.5 MiB)
  layer_1.pt         encoder layer 1 (~0.5 MiB)
  pooler.pt          pooler dense layer (~65 KiB)
  chunk_info.json    manifest: each chunk's file name, size, sha256, tensors

Each .pt file is a PyTorch zip checkpoint (the format torch.save writes since
1.6): a zip of uncompressed records <name>/data.pkl (pickle protocol 2 of an
OrderedDict of tensors, storages as persistent ids), <name>/byteorder,
<name>/data/<key> (raw little-endian float32 storage, 64-byte aligned) and
<name>/version, so torch.load() reads it and returns a state dict.  The
weights are deterministic pseudo-random float32 values (SHAKE-256 stream),
small and finite like real trained weights.

Usage: /usr/bin/python3 scripts/make-example.py [--out DIR] [--check]
"""

import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

HIDDEN = 128
HEADS = 2
LAYERS = 2
INTERMEDIATE = 256
VOCAB = 2560
MAX_POS = 512
TYPE_VOCAB = 2

CONFIG = collections.OrderedDict(
    [
        ("architectures", ["BertModel"]),
        ("model_type", "bert"),
        ("hidden_size", HIDDEN),
        ("num_hidden_layers", LAYERS),
        ("num_attention_heads", HEADS),
        ("intermediate_size", INTERMEDIATE),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("attention_probs_dropout_prob", 0.1),
        ("max_position_embeddings", MAX_POS),
        ("type_vocab_size", TYPE_VOCAB),
        ("vocab_size", VOCAB),
        ("initializer_range", 0.02),
        ("layer_norm_eps", 1e-12),
        ("pad_token_id", 0),
        ("position_embedding_type", "absolute"),
        ("torch_dtype", "float32"),
        ("_note", "chunkfs example: random weights, not a trained model"),
    ]
)


def chunk_tensors():
    """(chunk file name, [(tensor name, shape)]) in store order."""
    emb = "bert.embeddings."
    chunks = [
        (
            "embeddings.pt",
            [
                (emb + "word_embeddings.weight", (VOCAB, HIDDEN)),
                (emb + "position_embeddings.weight", (MAX_POS, HIDDEN)),
                (emb + "token_type_embeddings.weight", (TYPE_VOCAB, HIDDEN)),
                (emb + "LayerNorm.weight", (HIDDEN,)),
                (emb + "LayerNorm.bias", (HIDDEN,)),
            ],
        )
    ]
    for i in range(LAYERS):
        p = "bert.encoder.layer.%d." % i
        t = []
        for m in ("query", "key", "value"):
            t.append((p + "attention.self.%s.weight" % m, (HIDDEN, HIDDEN)))
            t.append((p + "attention.self.%s.bias" % m, (HIDDEN,)))
        t += [
            (p + "attention.output.dense.weight", (HIDDEN, HIDDEN)),
            (p + "attention.output.dense.bias", (HIDDEN,)),
            (p + "attention.output.LayerNorm.weight", (HIDDEN,)),
            (p + "attention.output.LayerNorm.bias", (HIDDEN,)),
            (p + "intermediate.dense.weight", (INTERMEDIATE, HIDDEN)),
            (p + "intermediate.dense.bias", (INTERMEDIATE,)),
            (p + "output.dense.weight", (HIDDEN, INTERMEDIATE)),
            (p + "output.dense.bias", (HIDDEN,)),
            (p + "output.LayerNorm.weight", (HIDDEN,)),
            (p + "output.LayerNorm.bias", (HIDDEN,)),
        ]
        chunks.append(("layer_%d.pt" % i, t))
    chunks.append(
        (
            "pooler.pt",
            [
                ("bert.pooler.dense.weight", (HIDDEN, HIDDEN)),
                ("bert.pooler.dense.bias", (HIDDEN,)),
            ],
        )
    )
    return chunks


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def tensor_bytes(name, shape):
    """Deterministic float32 little-endian data for one tensor.

    LayerNorm weights are 1.0 + noise, biases and everything else small
    noise.  Each value is (a + b - 65535) / 2**21 for two 16-bit words a, b of
    a SHAKE-256 stream seeded with the tensor name: exact in float32 (so no
    libm or platform rounding is involved), bell-shaped, |x| < 0.032.
    """
    n = numel(shape)
    raw = hashlib.shake_256(b"chunkfs-bert-tiny:" + name.encode()).digest(4 * n)
    words = struct.unpack("<%dH" % (2 * n), raw)
    base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
    vals = [base + (words[2 * i] + words[2 * i + 1] - 65535) / 2097152.0 for i in range(n)]
    return struct.pack("<%df" % n, *vals)


# --- a PyTorch zip checkpoint, written without torch -------------------------
#
# The pickle must name torch._utils._rebuild_tensor_v2 and torch.FloatStorage
# as globals, the way torch.save writes them.  pickle looks globals up by
# module and name to check them, so stand-in modules are registered under
# those names for the time of the dump (only inside this process).


def _rebuild_tensor_v2(*args):  # stand-in; never called here
    raise NotImplementedError


class FloatStorage:  # stand-in for the class torch.FloatStorage
    pass


class _Storage:
    def __init__(self, key, data, count):
        self.key, self.data, self.count = key, data, count


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        # Same call torch.Tensor.__reduce_ex__ produces for a plain CPU tensor:
        # (storage, storage_offset, size, stride, requires_grad, backward_hooks)
        args = (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict())
        return (_rebuild_tensor_v2, args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            # ('storage', storage type, key, location, numel), as torch.save
            return ("storage", FloatStorage, obj.key, "cpu", obj.count)
        return None


def _install_stand_ins():
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch._utils = utils
    torch.FloatStorage = FloatStorage
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return saved


def _remove_stand_ins(saved):
    for m, v in saved.items():
        if v is None:
            sys.modules.pop(m, None)
        else:
            sys.modules[m] = v


ALIGN = 64  # torch aligns each record's data to 64 bytes
FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def _write_record(zf, buf, name, data):
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix
    info.external_attr = 0o644 << 16
    # Local header = 30 bytes + name + extra; pad with an extra field
    # (id "FB", as PyTorch's writer does) so the data starts 64-aligned.
    header_end = buf.tell() + 30 + len(name.encode()) + 4
    pad = (-header_end) % ALIGN
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)


def torch_zip(archive, tensors):
    """Bytes of a torch.save()-style zip holding an OrderedDict of tensors."""
    state = collections.OrderedDict()
    storages = []
    for name, shape in tensors:
        st = _Storage(str(len(storages)), tensor_bytes(name, shape), numel(shape))
        storages.append(st)
        state[name] = _Tensor(st, shape)
    pkl = io.BytesIO()
    saved = _install_stand_ins()
    try:
        _Pickler(pkl, protocol=2).dump(state)
    finally:
        _remove_stand_ins(saved)

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        _write_record(zf, buf, archive + "/data.pkl", pkl.getvalue())
        _write_record(zf, buf, archive + "/byteorder", b"little")
        for st in storages:
            _write_record(zf, buf, archive + "/data/" + st.key, st.data)
        _write_record(zf, buf, archive + "/version", b"3\n")
    return buf.getvalue()


def manifest_json(manifest):
    """Indented JSON, with each tensor entry kept on one line."""
    compact = {}

    def placeholders(obj):
        if isinstance(obj, dict) and "shape" in obj:
            key = "@@tensor%d@@" % len(compact)
            compact['"%s"' % key] = json.dumps(obj)
            return key
        if isinstance(obj, dict):
            return collections.OrderedDict((k, placeholders(v)) for k, v in obj.items())
        if isinstance(obj, list):
            return [placeholders(v) for v in obj]
        return obj

    text = json.dumps(placeholders(manifest), indent=2)
    for key, value in compact.items():
        text = text.replace(key, value)
    return text


def build():
    """{relative file name: bytes} of the whole store, plus the .sha256 text."""
    files = collections.OrderedDict()
    files["config.json"] = (json.dumps(CONFIG, indent=2) + "\n").encode()
    manifest_chunks = []
    total = 0
    for fname, tensors in chunk_tensors():
        data = torch_zip(fname[: -len(".pt")], tensors)
        files[fname] = data
        manifest_chunks.append(
            collections.OrderedDict(
                [
                    ("file", fname),
                    ("size", len(data)),
                    ("sha256", hashlib.sha256(data).hexdigest()),
                    ("format", "torch-zip"),
                    (
                        "tensors",
                        [
                            collections.OrderedDict(
                                [("name", n), ("dtype", "float32"), ("shape", list(s))]
                            )
                            for n, s in tensors
                        ],
                    ),
                ]
            )
        )
        total += len(data)
    manifest = collections.OrderedDict(
        [
            ("format", "chunkfs-chunk-info"),
            ("version", 1),
            ("model", "bert-tiny"),
            ("config", "config.json"),
            ("dtype", "float32"),
            ("num_chunks", len(manifest_chunks)),
            ("total_size", total),
            ("chunks", manifest_chunks),
        ]
    )
    files["chunk_info.json"] = (manifest_json(manifest) + "\n").encode()
    sums = "".join(
        "%s  %s\n" % (hashlib.sha256(files[n]).hexdigest(), n) for n in sorted(files)
    )
    return files, sums


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(repo, "examples"),
                    help="directory to write bert-tiny/ and bert-tiny.sha256 into")
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing")
    args = ap.parse_args()

    files, sums = build()
    store = os.path.join(args.out, "bert-tiny")
    sums_path = os.path.join(args.out, "bert-tiny.sha256")
    if args.check:
        bad = [n for n, d in files.items()
               if not os.path.isfile(os.path.join(store, n))
               or open(os.path.join(store, n), "rb").read() != d]
        if not os.path.isfile(sums_path) or open(sums_path).read() != sums:
            bad.append("../bert-tiny.sha256")
        if bad:
            print("make-example: differs: " + ", ".join(bad), file=sys.stderr)
            return 1
        print("make-example: %s is up to date" % store)
        return 0

    os.makedirs(store, exist_ok=True)
    for n, d in files.items():
        with open(os.path.join(store, n), "wb") as f:
            f.write(d)
    with open(sums_path, "w") as f:
        f.write(sums)
    total = sum(len(d) for d in files.values())
    for n, d in files.items():
        print("%8d  %s" % (len(d), os.path.join(store, n)))
    print("%8d  total" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
