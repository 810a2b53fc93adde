#!/usr/bin/python3
"""avg_numpy.py: the numpy side of bench/avg.sh.

  avg_numpy.py gen DIR N PARAMS   write DIR/in{1..N}.blob and .npy (f32)
  avg_numpy.py avg OUT.npy IN.npy...   Flower's weighted average: np.load
                                  each, weighted sum, np.save
"""
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/tests/fixtures")


def gen(d, n, params):
    from mkblob import MAGIC, pack, pad
    rng = np.random.default_rng(1)
    side = int(params ** 0.5)
    for i in range(1, n + 1):
        w = rng.standard_normal((side, side), dtype=np.float32)
        b = rng.standard_normal(side, dtype=np.float32)
        np.save("%s/in%d.npy" % (d, i), np.concatenate([w.ravel(), b]))
        tens = []
        for name, a in (("0.weight", w), ("0.bias", b)):
            raw = a.tobytes()
            tens.append({"name": name, "dtype": "f32", "shape": list(a.shape),
                         "enc": "raw", "size": len(raw),
                         "crc32": zlib.crc32(raw)})
        hdr = pack({"v": 1, "kind": "model",
                    "meta": {"samples": 100 * i, "round": 1},
                    "tensors": tens})
        head = MAGIC + struct.pack("<I", len(hdr)) + hdr
        with open("%s/in%d.blob" % (d, i), "wb") as f:
            f.write(head + b"\0" * pad(len(head)))
            for a in (w, b):
                f.write(a.tobytes())
                f.write(b"\0" * pad(a.nbytes))


def avg(out, paths):
    ws = [100.0 * (i + 1) for i in range(len(paths))]
    arrays = [np.load(p) for p in paths]
    total = sum(ws)
    agg = sum(a * (w / total) for a, w in zip(arrays, ws))
    np.save(out, agg)


if sys.argv[1] == "gen":
    gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    avg(sys.argv[2], sys.argv[3:])
