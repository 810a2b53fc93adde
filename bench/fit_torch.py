#!/usr/bin/python3
"""fit_torch.py: the PyTorch side of bench/fit.sh: train the MLP of a model
blob on a dataset blob as fl-fit --local does (shuffled batches, SGD), then
evaluate on a test blob.

  fit_torch.py --threads N --epochs E --batch B --lr X MODEL TRAIN TEST

Prints one JSON line: samples_per_s (training loop only), seconds,
cpu_seconds (of all threads), accuracy.
Reads FLB v1 blobs (raw f32/u8/i32/i64 tensors) with numpy.
"""
import argparse
import json
import struct
import time

import numpy as np
import torch

MAGIC = b"\x89FLB\r\n\x1a\n"
DT = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "u8": np.uint8,
      "i8": np.int8, "i32": np.int32, "i64": np.int64}


def unpack(b, i):
    """Enough msgpack for blob headers."""
    c = b[i]
    i += 1
    if c < 0x80:
        return c, i
    if c >= 0xe0:
        return c - 256, i
    if 0x80 <= c <= 0x8f or c in (0xde, 0xdf):
        if c <= 0x8f:
            n = c & 15
        else:
            w = 2 if c == 0xde else 4
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        d = {}
        for _ in range(n):
            k, i = unpack(b, i)
            d[k], i = unpack(b, i)
        return d, i
    if 0x90 <= c <= 0x9f or c in (0xdc, 0xdd):
        if c <= 0x9f:
            n = c & 15
        else:
            w = 2 if c == 0xdc else 4
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        a = []
        for _ in range(n):
            v, i = unpack(b, i)
            a.append(v)
        return a, i
    if 0xa0 <= c <= 0xbf or c in (0xd9, 0xda, 0xdb):
        if c <= 0xbf:
            n = c & 31
        else:
            w = {0xd9: 1, 0xda: 2, 0xdb: 4}[c]
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        return b[i:i + n].decode(), i + n
    if c in (0xc4, 0xc5, 0xc6):
        w = {0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
        n = int.from_bytes(b[i:i + w], "big")
        i += w
        return b[i:i + n], i + n
    simple = {0xc0: None, 0xc2: False, 0xc3: True}
    if c in simple:
        return simple[c], i
    fmts = {0xca: ">f", 0xcb: ">d", 0xcc: ">B", 0xcd: ">H", 0xce: ">I",
            0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
    f = fmts[c]
    return struct.unpack_from(f, b, i)[0], i + struct.calcsize(f)


def read_blob(path):
    b = open(path, "rb").read()
    assert b[:8] == MAGIC, path
    hlen = struct.unpack_from("<I", b, 8)[0]
    h, _ = unpack(b, 12)
    off = 12 + hlen
    off += -off % 64
    ts = {}
    for t in h["tensors"]:
        assert t["enc"] == "raw", "compressed blobs are not supported here"
        a = np.frombuffer(b, DT[t["dtype"]], count=int(np.prod(t["shape"])),
                          offset=off)
        ts[t["name"]] = a.reshape(t["shape"])
        off += t["size"] + (-t["size"] % 64)
    return h, ts


def build(h, ts):
    layers = []
    for l in h["meta"]["arch"]:
        if l["type"] == "linear":
            layers.append(torch.nn.Linear(l["in"], l["out"]))
        elif l["type"] == "relu":
            layers.append(torch.nn.ReLU())
        elif l["type"] == "tanh":
            layers.append(torch.nn.Tanh())
        elif l["type"] == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        elif l["type"] == "dropout":
            layers.append(torch.nn.Dropout(l.get("p", 0.5)))
    net = torch.nn.Sequential(*layers)
    net.load_state_dict({k: torch.tensor(np.array(v, np.float32))
                         for k, v in ts.items()})
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("model")
    ap.add_argument("train")
    ap.add_argument("test")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    h, ts = read_blob(a.model)
    net = build(h, ts)
    _, tr = read_blob(a.train)
    _, te = read_blob(a.test)
    x = torch.tensor(np.array(tr["x"], np.float32).reshape(len(tr["x"]), -1))
    y = torch.tensor(np.array(tr["y"], np.int64))
    xt = torch.tensor(np.array(te["x"], np.float32).reshape(len(te["x"]), -1))
    yt = torch.tensor(np.array(te["y"], np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    lossf = torch.nn.CrossEntropyLoss()
    n = len(x)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(a.epochs):
        perm = torch.randperm(n)
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            loss = lossf(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    print(json.dumps({"samples_per_s": round(n * a.epochs / dt),
                      "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
                      "accuracy": round(acc, 4)}))


if __name__ == "__main__":
    main()
