#!/usr/bin/python3
"""Concurrent REST Proxy clients that retry until every record is answered.

    rest_kill_client.py URL TOPIC TOTAL THREADS BATCH OUT

Records {"id": N} for N in 0..TOTAL-1 are posted BATCH a request from THREADS
threads (python3-requests sessions, keep-alive). A request that gets no answer
(connection refused or reset: the server was killed) or a record answered with
an error is retried after a pause, as the README tells clients to do. OUT gets
a line "A id partition offset" for every record answered with an offset and
"R id" for every record of an attempt that got no offset."""
import queue
import sys
import threading
import time

import requests

url, topic, total, threads, batch, out_path = sys.argv[1:7]
total, threads, batch = int(total), int(threads), int(batch)
work = queue.Queue()
for start in range(0, total, batch):
    work.put(list(range(start, min(start + batch, total))))
out = open(out_path, "w", buffering=1)
lock = threading.Lock()
acked = 0


def client():
    global acked
    session = requests.Session()
    while True:
        try:
            ids = work.get_nowait()
        except queue.Empty:
            return
        body = '{"records": [' + ", ".join('{"value": {"id": %d}}' % i for i in ids) + "]}"
        try:
            r = session.post(f"{url}/topics/{topic}", data=body, timeout=60,
                             headers={"Content-Type": "application/vnd.kafka.json.v2+json"})
            offsets = r.json()["offsets"] if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            offsets = None
            session = requests.Session()
        retry = []
        lines = []
        for n, i in enumerate(ids):
            o = offsets[n] if offsets else None
            if o and o["offset"] is not None:
                lines.append(f"A {i} {o['partition']} {o['offset']}\n")
            else:
                lines.append(f"R {i}\n")
                retry.append(i)
        with lock:
            out.writelines(lines)
            acked += len(ids) - len(retry)
        if retry:
            time.sleep(0.2)
            work.put(retry)


pool = [threading.Thread(target=client) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print(f"{acked} records answered with an offset")
sys.exit(0 if acked == total and work.empty() else 1)
