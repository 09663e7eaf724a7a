#!/usr/bin/python3
"""Post sample rows to an HTTP front door exactly as the original pipeline's
user_posting_emulation.py does, with Debian's python3-requests.

    rest_producer.py batch|streams INVOKE_URL USER_ID PIN GEO USER [THREADS]

Each row of the three JSON-lines files (read as the original reads its RDS
rows: timestamps become datetime objects) is serialised with
json.dumps(..., default=str) and posted on its own request:
  batch:   POST INVOKE_URL/topics/USER_ID.pin, application/vnd.kafka.json.v2+json,
           {"records": [{"value": row}]}
  streams: PUT INVOKE_URL/streams/streaming-USER_ID-pin/record, application/json,
           {"StreamName": ..., "Data": row, "PartitionKey": "partition-1"}
Exits 1 if any answer is not a 200 with an offset (sequence number)."""
import concurrent.futures
import datetime
import json
import sys

import requests

mode, url, user_id, paths = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3], sys.argv[4:7]
threads = int(sys.argv[7]) if len(sys.argv) > 7 else 4
DATETIME_KEYS = {"timestamp", "date_joined"}


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                for k in DATETIME_KEYS & row.keys():
                    row[k] = datetime.datetime.strptime(row[k], "%Y-%m-%d %H:%M:%S")
                rows.append(row)
    return rows


def post(kind, row):
    if mode == "batch":
        invoke_url = f"{url}/topics/{user_id}.{kind}"
        payload = json.dumps({"records": [{"value": row}]}, default=str)
        headers = {"Content-Type": "application/vnd.kafka.json.v2+json"}
        response = requests.request("POST", invoke_url, headers=headers, data=payload)
        ok = response.status_code == 200 and response.json()["offsets"][0]["offset"] is not None
    else:
        stream = f"streaming-{user_id}-{kind}"
        invoke_url = f"{url}/streams/{stream}/record"
        payload = json.dumps(
            {"StreamName": stream, "Data": row, "PartitionKey": "partition-1"}, default=str
        )
        headers = {"Content-Type": "application/json"}
        response = requests.request("PUT", invoke_url, headers=headers, data=payload)
        ok = response.status_code == 200 and response.json()["SequenceNumber"].isdigit()
    if not ok:
        print(f"{invoke_url}: {response.status_code} {response.text[:300]}", file=sys.stderr)
    return ok


tables = [("pin", load(paths[0])), ("geo", load(paths[1])), ("user", load(paths[2]))]
# the original posts a pin row, then the geo and user rows of the same index
jobs = []
for i in range(len(tables[0][1])):
    for kind, rows in tables:
        if i < len(rows):
            jobs.append((kind, rows[i]))
with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(lambda job: post(*job), jobs))
failed = results.count(False)
print(f"{mode}: {len(results)} rows posted, {failed} failed")
sys.exit(1 if failed else 0)
