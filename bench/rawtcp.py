"""bench/rawtcp.py: FILE over raw TCP loopback, the peer flkit's transfers
are set against: sendfile(2) into a receiver of 1 MiB recv_into blocks,
both C loops under Python.

  rawtcp.py FILE           the receiver discards what it reads
  rawtcp.py FILE DEST      it writes DEST, fsyncs and removes it: what a
                           plain durable receiver does
"""
import os
import socket
import sys
import threading

ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)


def rx():
    c, _ = ls.accept()
    v = memoryview(bytearray(1 << 20))
    fd = -1
    if len(sys.argv) > 2:
        fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    while True:
        n = c.recv_into(v)
        if not n:
            break
        if fd >= 0:
            os.write(fd, v[:n])
    if fd >= 0:
        os.fsync(fd)
        os.close(fd)
        os.unlink(sys.argv[2])


t = threading.Thread(target=rx)
t.start()
s = socket.create_connection(ls.getsockname())
with open(sys.argv[1], "rb") as f:
    s.sendfile(f)
s.close()
t.join()
