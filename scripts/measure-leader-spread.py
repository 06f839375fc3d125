# Where a cluster's write work lands, with the data groups' leadership spread or not:
#   python3 scripts/measure-leader-spread.py on|off [seconds]
# or what a node's restart costs the writers (its groups fail over, then are handed back):
#   python3 scripts/measure-leader-spread.py restart [seconds]
# Starts 3 nodes (the debug build in $CARGO_TARGET_DIR or ~/.cache/kalamdb-target) with
# `[cluster] balance_leaders = true|false`, 16 users with a token each, then 8 writers that
# INSERT into the users' partitions through every node for `seconds` (default 20). Prints the
# data groups each node leads, writes/s, INSERT latency, and each node's share of the CPU
# the three used during the load.
import base64, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request

mode = sys.argv[1]
balance = {"on": "true", "off": "false", "restart": "true"}[mode]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/kalamdb-target")),
                      "debug", "kalamdb-server")
work = tempfile.mkdtemp()
config = os.path.join(work, "cluster.toml")
open(config, "w").write(f"[cluster]\nbalance_leaders = {balance}\n")
env = dict(os.environ, KALAMDB_CLUSTER_SECRET="s" * 40, KALAMDB_ROOT_PASSWORD="rootpass123", RUST_LOG="warn")
peers = ",".join(f"{i}=127.0.0.1:{19280 + i}" for i in (1, 2, 3))
ports = {i: 18280 + i for i in (1, 2, 3)}
procs = []
def node_args(i):
    return [binary, "--config", config, "--node-id", str(i), "--listen", f"127.0.0.1:{ports[i]}",
            "--cluster-listen", f"127.0.0.1:{19280 + i}", "--cluster-peers", peers,
            "--data-dir", os.path.join(work, f"n{i}")] + (["--cluster-bootstrap"] if i == 1 else [])


for i in (1, 2, 3):
    procs.append(subprocess.Popen(node_args(i), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def request(port, path, body, auth):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                               headers={"content-type": "application/json", "authorization": auth})
    return json.load(urllib.request.urlopen(r, timeout=30))


def health():
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/v1/api/cluster/health", timeout=2))


try:
    for _ in range(300):
        try:
            h = health()
            if all(g["leader"] for g in h["groups"]) and len(h["members"]) == 3:
                break
        except Exception:
            pass
        time.sleep(0.1)
    root = "Basic " + base64.b64encode(b"root:rootpass123").decode()
    ddl = "CREATE NAMESPACE b; CREATE USER TABLE b.t (id BIGINT PRIMARY KEY, n INT)"
    request(ports[1], "/v1/api/sql", {"sql": ddl}, root)
    tokens = []
    for u in range(16):
        request(ports[1], "/v1/api/sql", {"sql": f"CREATE USER 'u{u}' WITH PASSWORD 'password-{u}' ROLE user"}, root)
    for u in range(16):
        answer = request(ports[1 + u % 3], "/v1/api/auth/login", {"username": f"u{u}", "password": f"password-{u}"}, "")
        tokens.append("Bearer " + answer["access_token"])
    time.sleep(6)  # two rounds of the balancer, when on
    led = {i: 0 for i in (1, 2, 3)}
    for g in health()["groups"][1:]:
        led[g["leader"]] += 1

    def cpu(p):
        return sum(int(x) for x in open(f"/proc/{p.pid}/stat").read().split()[13:15])

    latencies, errors, lock, stop = [], [], threading.Lock(), time.monotonic() + seconds
    # Restarting node 2: the writers go through nodes 1 and 3 only.
    through = [1, 3] if mode == "restart" else [1, 2, 3]

    def writer(w):
        k, mine, failed = 0, [], []
        while time.monotonic() < stop:
            u = (w + 8 * (k % 2)) % 16
            start = time.perf_counter()
            try:
                request(ports[through[(w + k) % len(through)]], "/v1/api/sql",
                        {"sql": f"INSERT INTO b.t (id, n) VALUES ({w * 10**9 + k}, 1)"}, tokens[u])
                mine.append((time.perf_counter() - start) * 1e3)
            except urllib.error.HTTPError as e:
                failed.append(f"{e.code} {json.loads(e.read() or b'{}').get('error', {}).get('message', '')[:90]}")
            except Exception as e:
                failed.append(str(e)[:90])
            k += 1
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    before = [cpu(p) for p in procs]
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    if mode == "restart":
        # Node 2 dies a quarter of the way in, and is back at half time; its groups fail
        # over to the others, then are handed back once it has caught up.
        time.sleep(seconds / 4)
        procs[1].kill()
        procs[1].wait()
        time.sleep(seconds / 4)
        procs[1] = subprocess.Popen(node_args(2), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for t in threads:
        t.join()
    took = time.monotonic() - started
    latencies.sort()
    summary = (f"{len(latencies) / took:.0f} writes/s; INSERT ms p50 {statistics.median(latencies):.2f} "
               f"p99 {latencies[int(len(latencies) * .99)]:.2f} max {latencies[-1]:.0f}")
    if mode == "restart":
        time.sleep(8)  # the handbacks, which the balancer starts within 2 s of node 2 catching up
        after = {i: 0 for i in (1, 2, 3)}
        for g in health()["groups"][1:]:
            after[g["leader"]] += 1
        print(f"node 2 killed and restarted under load: data groups led {led} before, {after} after; {summary}; "
              f"{len(errors)} writes failed {sorted(set(errors))[:3]}")
    else:
        used = [cpu(p) - b for p, b in zip(procs, before)]
        share = ", ".join(f"node {i + 1} {100 * u / sum(used):.0f}%" for i, u in enumerate(used))
        print(f"balance_leaders={balance}: data groups led {led}; {summary}; CPU share {share}; "
              f"CPU used {sum(used) / os.sysconf('SC_CLK_TCK') / took:.2f} cores")
finally:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    shutil.rmtree(work, ignore_errors=True)
