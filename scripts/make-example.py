#!/usr/bin/python3
"""Generate the example chunk set examples/bert-tiny/ in the streaming_weights chunker's layout.

The files are those ModelChunker.chunk_model() writes for a BERT model of the
bert-tiny shape (hidden 128, 2 layers, 2 heads, intermediate 512, vocab 30522,
512 positions, 2 token types); see /work/shared/CHUNK-LAYOUT.md:

  config.json       the model's config (as config.save_pretrained() writes it)
  embeddings.pt     torch.save(embeddings.state_dict())   (~7.6 MiB)
  layer_0.pt        torch.save(encoder.layer[0].state_dict())
  layer_1.pt        torch.save(encoder.layer[1].state_dict())
  pooler.pt         torch.save(pooler.state_dict())
  chunk_info.json   the manifest, written last

State-dict keys are the submodules' own (word_embeddings.weight,
attention.self.query.weight, dense.bias, ...), with no model prefix; every
tensor is float16, as the chunker's default compress=True saves float32
weights; each file is torch.save() of the dict into memory, written whole.
The weights are random (seeded torch.Generator), not a trained model: normal
with the config's initializer_range, LayerNorm weights near 1.  Values are
rounded to multiples of 2**-10 (exact in float16), which keeps the files
compressible for git without changing what a loader sees.

Next to the store it writes what scripts/load-example.py checks a load
against:

  examples/bert-tiny.sha256        sha256 of every file (sha256sum -c format)
  examples/bert-tiny.tensors.json  per chunk file and state-dict key: dtype,
                                   shape and the sha256 of the tensor's bytes

The output is deterministic for a given torch version (this one was made
with Debian's python3-torch 1.13); --check regenerates and compares.

Usage: /usr/bin/python3 scripts/make-example.py [--out DIR] [--check]
"""

import argparse
import collections
import hashlib
import io
import json
import os
import sys

try:
    import torch
except ImportError:
    sys.exit("make-example: needs torch (apt-get install python3-torch)")

SEED = 20240612
HIDDEN = 128
HEADS = 2
LAYERS = 2
INTERMEDIATE = 512
VOCAB = 30522
MAX_POS = 512
TYPE_VOCAB = 2
INIT_RANGE = 0.02
MODEL_NAME = "chunkfs-example/bert-tiny-random"

# The keys config.to_dict() has for this model (save_pretrained sorts them).
CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "classifier_dropout": None,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": HIDDEN,
    "initializer_range": INIT_RANGE,
    "intermediate_size": INTERMEDIATE,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": MAX_POS,
    "model_type": "bert",
    "num_attention_heads": HEADS,
    "num_hidden_layers": LAYERS,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "transformers_version": "4.30.2",
    "type_vocab_size": TYPE_VOCAB,
    "use_cache": True,
    "vocab_size": VOCAB,
}


def chunk_shapes():
    """(chunk name, file, [(state-dict key, shape)]) in the chunker's order."""
    chunks = [
        (
            "embeddings",
            "embeddings.pt",
            [
                ("word_embeddings.weight", (VOCAB, HIDDEN)),
                ("position_embeddings.weight", (MAX_POS, HIDDEN)),
                ("token_type_embeddings.weight", (TYPE_VOCAB, HIDDEN)),
                ("LayerNorm.weight", (HIDDEN,)),
                ("LayerNorm.bias", (HIDDEN,)),
            ],
        )
    ]
    layer = []
    for m in ("query", "key", "value"):
        layer += [
            ("attention.self.%s.weight" % m, (HIDDEN, HIDDEN)),
            ("attention.self.%s.bias" % m, (HIDDEN,)),
        ]
    layer += [
        ("attention.output.dense.weight", (HIDDEN, HIDDEN)),
        ("attention.output.dense.bias", (HIDDEN,)),
        ("attention.output.LayerNorm.weight", (HIDDEN,)),
        ("attention.output.LayerNorm.bias", (HIDDEN,)),
        ("intermediate.dense.weight", (INTERMEDIATE, HIDDEN)),
        ("intermediate.dense.bias", (INTERMEDIATE,)),
        ("output.dense.weight", (HIDDEN, INTERMEDIATE)),
        ("output.dense.bias", (HIDDEN,)),
        ("output.LayerNorm.weight", (HIDDEN,)),
        ("output.LayerNorm.bias", (HIDDEN,)),
    ]
    for i in range(LAYERS):
        chunks.append(("layer_%d" % i, "layer_%d.pt" % i, layer))
    chunks.append(
        ("pooler", "pooler.pt", [("dense.weight", (HIDDEN, HIDDEN)), ("dense.bias", (HIDDEN,))])
    )
    return chunks


def state_dict(gen, shapes):
    """The submodule's float32 state dict, then compressed as the chunker does."""
    sd = collections.OrderedDict()
    for key, shape in shapes:
        noise = torch.randn(shape, generator=gen, dtype=torch.float32) * INIT_RANGE
        if key.endswith("LayerNorm.weight"):
            noise += 1.0
        sd[key] = torch.round(noise * 1024.0) / 1024.0
    # compress=True: float32 tensors are saved as float16, others as they are.
    return collections.OrderedDict(
        (k, v.half() if v.dtype == torch.float32 else v) for k, v in sd.items()
    )


def saved_bytes(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def tensor_sha256(t):
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def build():
    """({file: bytes} in writing order, tensors record)."""
    gen = torch.Generator().manual_seed(SEED)
    files = collections.OrderedDict()
    files["config.json"] = (json.dumps(CONFIG, indent=2, sort_keys=True) + "\n").encode()
    chunks = collections.OrderedDict()
    tensors = collections.OrderedDict()
    for name, fname, shapes in chunk_shapes():
        sd = state_dict(gen, shapes)
        data = saved_bytes(sd)
        files[fname] = data
        chunks[name] = collections.OrderedDict(
            [("file", fname), ("size_mb", len(data) / (1024 * 1024))]
        )
        tensors[fname] = collections.OrderedDict(
            (
                k,
                collections.OrderedDict(
                    [
                        ("dtype", str(v.dtype).replace("torch.", "")),
                        ("shape", list(v.shape)),
                        ("sha256", tensor_sha256(v)),
                    ]
                ),
            )
            for k, v in sd.items()
        )
    info = collections.OrderedDict(
        [
            ("model_name", MODEL_NAME),
            ("model_type", "bert"),
            ("num_layers", LAYERS),
            ("chunks", chunks),
            ("total_size_mb", sum(c["size_mb"] for c in chunks.values())),
        ]
    )
    files["chunk_info.json"] = json.dumps(info, indent=2).encode()
    return files, tensors


def outputs(files, tensors):
    """{path relative to the examples dir: bytes} of everything written."""
    out = collections.OrderedDict(("bert-tiny/" + n, d) for n, d in files.items())
    out["bert-tiny.sha256"] = "".join(
        "%s  %s\n" % (hashlib.sha256(files[n]).hexdigest(), n) for n in sorted(files)
    ).encode()
    out["bert-tiny.tensors.json"] = (json.dumps(tensors, indent=1) + "\n").encode()
    return out


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(repo, "examples"),
                    help="directory to write bert-tiny/ and its check files into")
    ap.add_argument("--check", action="store_true",
                    help="compare with the files on disk instead of writing")
    args = ap.parse_args()

    out = outputs(*build())
    if args.check:
        bad = []
        for rel, data in out.items():
            path = os.path.join(args.out, rel)
            if not os.path.isfile(path) or open(path, "rb").read() != data:
                bad.append(rel)
        if bad:
            print("make-example: differs (torch %s): %s" % (torch.__version__, ", ".join(bad)),
                  file=sys.stderr)
            return 1
        print("make-example: %s is up to date" % os.path.join(args.out, "bert-tiny"))
        return 0

    os.makedirs(os.path.join(args.out, "bert-tiny"), exist_ok=True)
    # chunk_info.json comes last in the store's order: the chunker writes it
    # once every chunk is there.
    for rel, data in out.items():
        path = os.path.join(args.out, rel)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        print("%9d  %s" % (len(data), path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
