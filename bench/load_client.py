#!/usr/bin/env python3
"""bench/load_client.py: CLIENTS concurrent HTTP/1.1 clients of one fl-serve
(which closes each connection after its reply, so each request connects), REQUESTS requests each, mixing store (POST /v1/objects), fetch
(GET /v1/objects/ID, checked byte for byte), list (GET /v1/objects) and
delete (DELETE /v1/objects/ID, so that each client holds at most 4 objects
and the store stays near CLIENTS * 4). Prints one JSON line: counts, errors,
latency percentiles, fl-serve's RSS after request 1,000, every 10,000 and at
the end.

usage: load_client.py PORT TOKEN PID CLIENTS REQUESTS BLOB...
"""
import asyncio
import json
import random
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Stats:
    def __init__(self, pid):
        self.pid = pid
        self.done = 0
        self.errors = []
        self.lat = {"store": [], "fetch": [], "list": [], "delete": []}
        self.rss_1000 = None
        self.series = []  # (requests done, RSS KiB) every 10,000 requests


async def request(reader, writer, method, path, token, body=b""):
    head = "%s %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n" % (
        method, path, token)
    if method in ("POST", "PUT") or body:
        head += "Content-Length: %d\r\n" % len(body)
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    status = int(line.split()[1])
    length, close = 0, False
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "connection" and v.strip().lower() == "close":
            close = True
    data = await reader.readexactly(length) if length else b""
    return status, data, close


def msgpack_id(data):
    # the reply to a store: a msgpack map with "id": 16 hex digits
    i = data.find(b"\xa2id")
    if i < 0 or data[i + 3] != 0xB0:
        raise ValueError("no id in the reply")
    return data[i + 4:i + 20].decode()


async def client(n, port, token, blobs, requests, st, rnd):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mine = []  # (id, blob index)
    for _ in range(requests):
        r = rnd.random()
        if not mine or (r < 0.30 and len(mine) < 4):
            op = "store"
        elif r < 0.70:
            op = "fetch"
        elif r < 0.80:
            op = "list"
        else:
            op = "delete"
        t = time.perf_counter()
        try:
            if op == "store":
                b = rnd.randrange(len(blobs))
                status, data, close = await request(reader, writer, "POST",
                                                    "/v1/objects", token, blobs[b])
                if status != 201:
                    raise ValueError("store: HTTP %d" % status)
                mine.append((msgpack_id(data), b))
            elif op == "fetch":
                oid, b = rnd.choice(mine)
                status, data, close = await request(reader, writer, "GET",
                                                    "/v1/objects/" + oid, token)
                if status != 200 or data != blobs[b]:
                    raise ValueError("fetch %s: HTTP %d, %d bytes" % (oid, status, len(data)))
            elif op == "list":
                status, data, close = await request(reader, writer, "GET",
                                                    "/v1/objects", token)
                if status != 200 or not data:
                    raise ValueError("list: HTTP %d" % status)
            else:
                oid, b = mine.pop(rnd.randrange(len(mine)))
                status, data, close = await request(reader, writer, "DELETE",
                                                    "/v1/objects/" + oid, token)
                if status != 204:
                    raise ValueError("delete %s: HTTP %d" % (oid, status))
            if close:  # fl-serve answers one request per connection
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except Exception as e:  # counted, then a fresh connection
            st.errors.append("%s: %s" % (op, e))
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        st.lat[op].append(time.perf_counter() - t)
        st.done += 1
        if st.done == 1000:
            st.rss_1000 = rss_kib(st.pid)
        if st.done % 10000 == 0:
            st.series.append((st.done, rss_kib(st.pid)))
    writer.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else 0


async def main():
    port, token, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    clients, requests = int(sys.argv[4]), int(sys.argv[5])
    blobs = [open(p, "rb").read() for p in sys.argv[6:]]
    st = Stats(pid)
    t = time.perf_counter()
    await asyncio.gather(*(client(i, port, token, blobs, requests, st,
                                  random.Random(i)) for i in range(clients)))
    wall = time.perf_counter() - t
    every = [x for v in st.lat.values() for x in v]
    out = {
        "clients": clients, "requests": st.done, "errors": len(st.errors),
        "first_errors": st.errors[:5], "seconds": round(wall, 1),
        "requests_per_s": round(st.done / wall),
        "p50_ms": round(pct(every, 50), 2), "p99_ms": round(pct(every, 99), 2),
        "max_ms": round(max(every) * 1000, 1),
        "p99_ms_by_op": {k: round(pct(v, 99), 2) for k, v in st.lat.items()},
        "count_by_op": {k: len(v) for k, v in st.lat.items()},
        "rss_kib_at_1000": st.rss_1000, "rss_kib_at_end": rss_kib(pid),
        "rss_kib_series": st.series,
    }
    print(json.dumps(out))


asyncio.run(main())
