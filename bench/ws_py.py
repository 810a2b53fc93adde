"""bench/ws_py.py: one blob as one message through Python websockets on
loopback, as PySyft's transport carries it (the whole message in memory).

  ws_py.py serve PORT COMPRESSION      answer each message with its length;
                                       "down N" sends N bytes back instead
  ws_py.py up PORT FILE COMPRESSION    send FILE as one message; print seconds
  ws_py.py down PORT FILE COMPRESSION  receive as many bytes; print seconds
COMPRESSION: deflate (the websockets default) or none. Keepalive pings are
off: a peer busy with a 1 GiB message answers none, and the default 20 s
ping timeout would close the connection.
"""
import asyncio
import sys
import time

import websockets


def comp(name):
    return None if name == "none" else "deflate"


async def serve(port, compression):
    async def handler(ws, path=None):
        async for m in ws:
            if isinstance(m, str) and m.startswith("down "):
                await ws.send(bytes(int(m[5:])))
            else:
                await ws.send(str(len(m)))

    async with websockets.serve(handler, "127.0.0.1", port, max_size=None,
                                ping_interval=None,
                                compression=comp(compression)):
        await asyncio.Future()


async def client(mode, port, path, compression):
    async with websockets.connect("ws://127.0.0.1:%d" % port, max_size=None,
                                  ping_interval=None,
                                  compression=comp(compression)) as ws:
        if mode == "up":
            with open(path, "rb") as f:
                data = f.read()
            t = time.perf_counter()
            await ws.send(data)
            n = int(await ws.recv())
            assert n == len(data), (n, len(data))
        else:
            import os
            size = os.stat(path).st_size
            t = time.perf_counter()
            await ws.send("down %d" % size)
            m = await ws.recv()
            assert len(m) == size
        print("%.4f" % (time.perf_counter() - t))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        asyncio.run(client(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
