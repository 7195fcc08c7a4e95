"""Writes the safetensors files of the PyTorch fixture and benchmark scripts by hand, so the
`safetensors` package is not needed: an 8-byte little-endian header length, the JSON header padded
with spaces to a multiple of 8, then the raw little-endian data of each tensor in name order.
float64 (F64) and int64 (I64) tensors only — what avgrad's reader compares against."""
import json
import struct

import torch

_FORMATS = {torch.float64: ("F64", "d"), torch.int64: ("I64", "q")}


def write_safetensors(path, tensors, metadata):
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype not in _FORMATS:
            raise TypeError(f"{name}: {t.dtype} (only float64 and int64 are written)")
        code, fmt = _FORMATS[t.dtype]
        data = struct.pack(f"<{t.numel()}{fmt}", *t.flatten().tolist())
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
