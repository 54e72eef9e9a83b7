#!/usr/bin/python3
"""Rewrites a float32 safetensors file with float16 tensors (same names,
shapes and metadata), using only the standard library and numpy: the shipped
base models are stored at half size and widened back to float32 on load."""
import json, struct, sys
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out_header, blobs, off = {}, [], 0
for name, info in header.items():
    if name == "__metadata__":
        out_header[name] = info
        continue
    a, b = info["data_offsets"]
    arr = np.frombuffer(data[a:b], dtype={"F32": np.float32, "F16": np.float16}[info["dtype"]])
    blob = arr.astype(np.float16).tobytes()
    out_header[name] = {"dtype": "F16", "shape": info["shape"], "data_offsets": [off, off + len(blob)]}
    blobs.append(blob)
    off += len(blob)
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for blob in blobs:
        f.write(blob)
import os
os.replace(dst + ".tmp", dst)
