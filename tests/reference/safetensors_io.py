"""Minimal safetensors writer/reader using only numpy.

Layout: u64 little-endian header length N, N bytes of JSON header (padded
with spaces so that 8 + N is a multiple of 8), then the raw little-endian
tensor data, back to back in insertion order. data_offsets are relative to
the start of the data section.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I32": np.dtype("<i4"),
           "BF16": np.dtype("<u2")}


class BF16:
    """A float32 array to be stored as bfloat16 (its upper halves, rounded to nearest even)."""

    def __init__(self, arr):
        bits = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        self.bits = bits.astype(np.uint16)
        self.shape = self.bits.shape

    def widened(self):
        """The stored values as float32 (exact)."""
        return (self.bits.astype(np.uint32) << 16).view(np.float32)


def _code_for(arr):
    if arr.dtype == np.float32:
        return "F32"
    if arr.dtype == np.float16:
        return "F16"
    if arr.dtype == np.int32:
        return "I32"
    raise TypeError("unsupported dtype %s (convert to float32/int32 first)" % arr.dtype)


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32, float16 or int32) or BF16; metadata: dict
    str -> str."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        if isinstance(arr, BF16):
            code, arr = "BF16", arr.bits
        else:
            arr = np.ascontiguousarray(arr)
            code = _code_for(arr)
        data = arr.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)  # keep data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for data in blobs:
            f.write(data)


def load(path):
    """Returns (tensors, metadata): dict name -> numpy array (in file order), dict str -> str."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dt = _DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * dt.itemsize or end > len(data):
            raise ValueError("bad data_offsets for %s" % name)
        arr = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
        if info["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = arr
    return tensors, metadata
