# Idle CPU and INSERT latency of 3 nodes (the debug build in $CARGO_TARGET_DIR or ~/.cache/kalamdb-target) with N data groups: python3 scripts/measure-cluster-groups.py N
import os, subprocess, sys, time, json, tempfile, urllib.request, base64, statistics
bin_ = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/kalamdb-target")), "debug", "kalamdb-server")
groups = int(sys.argv[1])
d = tempfile.mkdtemp()
cfg = os.path.join(d, "c.toml"); open(cfg, "w").write(f"[cluster]\ndata_groups = {groups}\n")
env = dict(os.environ, KALAMDB_CLUSTER_SECRET="s" * 40, KALAMDB_ROOT_PASSWORD="rootpass123", RUST_LOG="warn")
peers = ",".join(f"{i}=127.0.0.1:{19180+i}" for i in (1, 2, 3))
procs = []
for i in (1, 2, 3):
    a = [bin_, "--config", cfg, "--node-id", str(i), "--listen", f"127.0.0.1:{18180+i}", "--cluster-listen", f"127.0.0.1:{19180+i}",
         "--cluster-peers", peers, "--data-dir", os.path.join(d, f"n{i}")] + (["--cluster-bootstrap"] if i == 1 else [])
    procs.append(subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
auth = "Basic " + base64.b64encode(b"root:rootpass123").decode()
def sql(port, q):
    r = urllib.request.Request(f"http://127.0.0.1:{port}/v1/api/sql", data=json.dumps({"sql": q}).encode(),
                               headers={"content-type": "application/json", "authorization": auth})
    return urllib.request.urlopen(r, timeout=20).read()
for _ in range(200):
    try:
        h = json.load(urllib.request.urlopen("http://127.0.0.1:18181/v1/api/cluster/health", timeout=1))
        if all(g["leader"] for g in h["groups"]) and len(h["members"]) == 3: break
    except Exception: pass
    time.sleep(0.1)
time.sleep(3)
def cpu(): return sum(sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().split()[13:15]) for p in procs)
t = os.sysconf("SC_CLK_TCK"); c0 = cpu(); time.sleep(20); c1 = cpu()
idle = (c1 - c0) / t / 20 * 100
sql(18181, "CREATE NAMESPACE b; CREATE SHARED TABLE b.t (id BIGINT PRIMARY KEY, n INT)")
time.sleep(1)
res = {}
for name, port in (("node 1", 18181), ("node 2", 18182)):
    lat = []
    for i in range(300):
        s = time.perf_counter(); sql(port, f"INSERT INTO b.t (id, n) VALUES ({port*1000+i}, 1)"); lat.append((time.perf_counter() - s) * 1e3)
    lat.sort(); res[name] = (statistics.median(lat), lat[int(len(lat) * .99)])
print(f"data_groups={groups}: idle CPU of the 3 nodes {idle:.1f}% of one core; INSERT ms p50/p99 " +
      ", ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}" for k, v in res.items()))
for p in procs: p.kill()
for p in procs: p.wait()
import shutil; shutil.rmtree(d, ignore_errors=True)
