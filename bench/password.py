#!/usr/bin/env python3
"""Password sign-in throughput and memory under a flood (security review M2). See README.md.

Started by bench/password.sh with TESSERA_BIN set. Runs `tessera serve --dev` on SQLite three
times on loopback ports, in the same run:

1. with the argon2id parameters Tessera used before (64 MiB, t=2): the baseline;
2. with today's defaults (OWASP: 19 MiB, t=2, p=1): password sign-ins/s, per core, and the
   server's CPU time per sign-in, as a ratio to (1);
3. a flood of 48 concurrent wrong passwords against (2) with the limits on, and against the
   old parameters with limits off: the servers' peak memory (VmHWM), as a ratio.

Only the standard library; every server it starts is stopped.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.environ["TESSERA_BIN"]
SECS = float(os.environ.get("BENCH_DURATION_SECS", "10"))
CLIENTS = int(os.environ.get("BENCH_CONCURRENCY", str(2 * (os.cpu_count() or 1))))
PORT = int(os.environ.get("BENCH_PORT", "24533"))
CORES = os.cpu_count() or 1


def call(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


class Server:
    def __init__(self, env):
        self.dir = tempfile.mkdtemp(prefix="tessera-bench-pw-")
        full = dict(os.environ)
        full.update({
            "DSN": f"sqlite://{self.dir}/bench.db?mode=rwc",
            "SERVE_PUBLIC_PORT": str(PORT),
            "SERVE_ADMIN_PORT": str(PORT + 1),
            "LOG_LEVEL": "error",
        })
        full.update(env)
        self.proc = subprocess.Popen([BIN, "serve", "--dev"], cwd=self.dir, env=full,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{PORT}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if call("GET", self.base + "/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        sys.exit("bench-password: the server did not become ready")

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_secs(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def register(self, email, password):
        _, flow = call("GET", self.base + "/self-service/registration/api")
        st, _ = call("POST", flow["ui"]["action"],
                     {"method": "password", "traits": {"email": email}, "password": password})
        assert st == 200, f"registration answered {st}"

    def login(self, email, password):
        _, flow = call("GET", self.base + "/self-service/login/api")
        st, _ = call("POST", flow["ui"]["action"],
                     {"method": "password", "identifier": email, "password": password})
        return st

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def sign_ins_per_sec(env):
    # Every sign-in starts a flow: lift the per-address flow limit for this one client.
    s = Server({**env, "LIMITS_FLOWS_PER_ADDRESS_PER_MINUTE": "1000000"})
    try:
        s.register("bench@example.com", "a long enough password 1")
        assert s.login("bench@example.com", "a long enough password 1") == 200
        done, errors, stop = [0], [0], time.time() + SECS
        lock = threading.Lock()

        def worker():
            while time.time() < stop:
                st = s.login("bench@example.com", "a long enough password 1")
                with lock:
                    if st == 200:
                        done[0] += 1
                    else:
                        errors[0] += 1

        cpu0, t0 = s.cpu_secs(), time.time()
        threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.time() - t0, s.cpu_secs() - cpu0
        if errors[0]:
            sys.exit(f"bench-password: {errors[0]} sign-ins failed; not a result")
        return done[0] / elapsed, cpu / max(done[0], 1) * 1000
    finally:
        s.stop()


def flood_peak_mib(env):
    s = Server(env)
    try:
        flows = [call("GET", s.base + "/self-service/login/api")[1] for _ in range(48)]
        before = s.status("VmHWM")
        statuses = []
        lock = threading.Lock()

        def guess(i):
            st, _ = call("POST", flows[i]["ui"]["action"],
                         {"method": "password", "identifier": f"u{i}@example.com", "password": "wrong password!"})
            with lock:
                statuses.append(st)

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = {c: statuses.count(c) for c in sorted(set(statuses))}
        return s.status("VmHWM") / 1024, before / 1024, counts
    finally:
        s.stop()


OLD = {"HASHERS_ARGON2_MEMORY": "64MB", "HASHERS_ARGON2_ITERATIONS": "2"}
print(f"bench-password: {CORES} cores, {CLIENTS} clients, {SECS:.0f} s per run", flush=True)
old_rate, old_cpu = sign_ins_per_sec(OLD)
new_rate, new_cpu = sign_ins_per_sec({})
print(f"password sign-ins/s  old 64 MiB argon2id: {old_rate:7.1f}  ({old_rate / CORES:.1f} per core, {old_cpu:.1f} ms CPU each)")
print(f"password sign-ins/s  default 19 MiB:      {new_rate:7.1f}  ({new_rate / CORES:.1f} per core, {new_cpu:.1f} ms CPU each)")
print(f"ratio default/old: {new_rate / old_rate:.2f}x (Keycloak publishes 15 password sign-ins/s per vCPU)")
unbounded = flood_peak_mib({**OLD, "LIMITS_ENABLED": "false"})
bounded = flood_peak_mib({})
print(f"48 concurrent wrong passwords, limits off, old params: peak {unbounded[0]:.0f} MiB (idle {unbounded[1]:.0f}), answers {unbounded[2]}")
print(f"48 concurrent wrong passwords, defaults:               peak {bounded[0]:.0f} MiB (idle {bounded[1]:.0f}), answers {bounded[2]}")
print(f"peak memory ratio defaults/unbounded: {bounded[0] / unbounded[0]:.2f}")
