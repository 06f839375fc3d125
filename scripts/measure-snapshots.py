#!/usr/bin/env python3
"""Measures cluster snapshots (BENCHMARKS.md, "Snapshots"): 3 nodes on loopback holding N rows
take snapshots every 1,000 entries, then a 4th node is added and installs one.

    python3 scripts/measure-snapshots.py target/release/kalamdb-server [ROWS=1000000] [TABLES=1]

TABLES shared tables share the rows (a table's rows are in one data group; with several, the
groups' snapshots each hold their own part).

Prints the load time, how long ADD NODE took, and each node's snapshot log lines (bytes, how
long applies were paused, total) and the new node's install time. Needs ~500 MB in $TMPDIR."""
import json, os, shutil, subprocess, sys, tempfile, time, urllib.request, base64, re, socket

BIN = sys.argv[1]
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
TABLES = int(sys.argv[3]) if len(sys.argv) > 3 else 1
PER = 500
SECRET = "bench-secret-bench-secret-bench-secret-00"
PW = "bench-root-password"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

tmp = tempfile.mkdtemp()
cfg = os.path.join(tmp, "c.toml")
open(cfg, "w").write("[cluster]\nsnapshot_every_entries = 1000\nsnapshot_keep_entries = 50\n")
cports = [free_port() for _ in range(4)]
hports = [free_port() for _ in range(4)]
peers = ",".join(f"{i+1}=127.0.0.1:{cports[i]}" for i in range(3))
procs, logs = [], []

def start(i, peers, boot):
    log = open(os.path.join(tmp, f"node{i+1}.log"), "w")
    args = [BIN, "--config", cfg, "--node-id", str(i+1), "--listen", f"127.0.0.1:{hports[i]}",
            "--cluster-listen", f"127.0.0.1:{cports[i]}", "--cluster-peers", peers,
            "--data-dir", os.path.join(tmp, f"d{i+1}"), "--log", "warn,kalamdb_server::cluster::snapshot=info"]
    if boot: args.append("--cluster-bootstrap")
    env = dict(os.environ, KALAMDB_CLUSTER_SECRET=SECRET, KALAMDB_ROOT_PASSWORD=PW)
    procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env))
    logs.append(log.name)

def sql(i, q, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{hports[i]}/v1/api/sql", data=json.dumps({"sql": q}).encode(),
        headers={"content-type": "application/json", "authorization": "Basic " + base64.b64encode(f"root:{PW}".encode()).decode()})
    return json.load(urllib.request.urlopen(req, timeout=timeout))

def wait_up(i):
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{hports[i]}/health", timeout=1); return
        except Exception: time.sleep(0.1)
    raise SystemExit(f"node {i+1} not up")

try:
    for i in range(3): start(i, peers, i == 0)
    for i in range(3): wait_up(i)
    time.sleep(2)
    sql(0, "CREATE NAMESPACE app; " + "; ".join(f"CREATE SHARED TABLE app.t{t} (id BIGINT PRIMARY KEY, body TEXT)" for t in range(TABLES)))
    t0 = time.time()
    for b in range(ROWS // PER):
        vals = ",".join(f"({b*PER+k}, 'row {b*PER+k} with some text to make it longer than a few bytes')" for k in range(PER))
        sql(b % 3, f"INSERT INTO app.t{b % TABLES} (id, body) VALUES {vals}")
    print(f"loaded {ROWS} rows in {time.time()-t0:.1f}s")
    # One more batch of entries per table so that a snapshot of each group covers the load.
    for t in range(TABLES):
        for b in range(1100):
            sql(0, f"INSERT INTO app.t{t} (id, body) VALUES ({ROWS+b}, 'x')")
    time.sleep(3)
    start(3, f"4=127.0.0.1:{cports[3]}", False)
    wait_up(3)
    t0 = time.time()
    sql(0, f"ALTER CLUSTER ADD NODE 4 '127.0.0.1:{cports[3]}'")
    print(f"ADD NODE returned after {time.time()-t0:.1f}s")
    for _ in range(600):
        try:
            counts = [sql(3, f"SELECT count(*) FROM app.t{t}")["results"][0]["rows"][0][0] for t in range(TABLES)]
            print("node 4 count", sum(counts)); break
        except Exception: time.sleep(0.2)
finally:
    for p in procs: p.terminate()
    time.sleep(1)
    for p in procs: p.wait()
    for name in logs:
        for line in open(name):
            if "took a snapshot" in line or "installed the snapshot" in line:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line.strip())
                fields = re.findall(r"group=\d+|index: \d+|bytes=\d+|keys=\d+|applies_paused_ms=\d+|total_ms=\d+|ms=\d+", line)
                print(os.path.basename(name), " ".join(fields))
    shutil.rmtree(tmp, ignore_errors=True)
