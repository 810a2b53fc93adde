"""bench/rotate.py: time commands in rotation, so that a slow spell of a
shared machine falls on all of them alike rather than on whichever ran then.

  rotate.py RUNS < CASES

CASES has a line a command, fields separated by tabs:

  LABEL  FLAGS  WARM  CMD

FLAGS is "-" or letters: "b" marks the baseline (the first such line),
against which every other line's time is set, run by run; "r" a second
reference for the lines from the last heading to the next; "u" says the
command stores an object and prints its pointer or JSON reply, which is
deleted after each run through DELETE http://127.0.0.1:PORT/v1/objects/ID
(PORT and the token from the environment: ROT_PORT_<digits in FLAGS>, say
"u1", and ROT_TOKEN). WARM is a space-separated list of paths read before
each run (files, or directories read whole), so that the blob and the
store's files are in the page cache: this machine's kernel pages out page
cache that looks idle, and a run would otherwise read from the disk now and
then. CMD is run by sh. A line "#TEXT" prints TEXT as a heading in place.

For each line: the median of its RUNS wall times, the largest peak RSS of
its runs, and the medians over runs of baseline time / its time and of
reference time / its time (0 without one), printed as
"LABEL SECONDS RSS_MIB RATIO REF_RATIO" with tabs between. Every round runs every
command once, the baseline first and the others in an order of their own
(shuffled, seed ROT_SEED, default 1): on this machine a run's time depends
on what ran just before it (memory that another run freed comes back slowly
from the host), and a fixed order would charge that to the same commands
each time. A command that fails stops it all.
"""
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request


def warm(paths):
    for p in paths.split():
        if p == "-" or not os.path.exists(p):
            continue
        subprocess.run(["find", p, "-type", "f", "-exec", "cat", "{}", "+"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def delete(flags, out):
    port = os.environ["ROT_PORT_" + re.sub(r"\D", "", flags)]
    s = out.decode().strip()
    oid = json.loads(s)["id"] if s.startswith("{") else s.split("/")[-1]
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%s/v1/objects/%s" % (port, oid), method="DELETE",
        headers={"Authorization": "Bearer " + os.environ["ROT_TOKEN"]}))


def ratio(ref, c):
    """The median over runs of ref's time over c's."""
    if not ref:
        return 0
    return statistics.median(r / t for r, t in zip(ref["t"], c["t"]))


def main():
    runs = int(sys.argv[1])
    cases, section = [], []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.startswith("#"):
            cases.append({"head": line[1:]})
            section = []
        elif line:
            label, flags, paths, cmd = line.split("\t", 3)
            cases.append({"label": label, "flags": flags, "warm": paths,
                          "cmd": cmd, "t": [], "rss": 0, "section": section})
            if "r" in flags:
                section.append(cases[-1])
    timed = [c for c in cases if "cmd" in c]
    base = next((c for c in timed if "b" in c["flags"]), None)
    rnd = random.Random(int(os.environ.get("ROT_SEED", "1")))
    others = [c for c in timed if c is not base]
    for _ in range(runs):
        rnd.shuffle(others)
        for c in ([base] if base else []) + others:
            warm(c["warm"])
            t = time.perf_counter()
            p = subprocess.Popen(["sh", "-c", c["cmd"]],
                                 stdout=subprocess.PIPE)
            out = p.stdout.read()
            _, st, ru = os.wait4(p.pid, 0)
            c["t"].append(time.perf_counter() - t)
            if st:
                sys.exit("rotate.py: failed: %s" % c["cmd"])
            c["rss"] = max(c["rss"], ru.ru_maxrss)
            if "u" in c["flags"]:
                delete(c["flags"], out)
    for c in cases:
        if "head" in c:
            print("#" + c["head"])
            continue
        ref = c["section"][0] if c["section"] else None
        print("%s\t%.4f\t%.0f\t%.4f\t%.4f" % (
            c["label"], statistics.median(c["t"]), c["rss"] / 1024,
            ratio(base, c), ratio(ref, c)))


main()
