#!/usr/bin/env python3
"""Load benchmark of gotrue-rs on this machine, against the machine's own limits.

Started by bench/run.sh (which builds the release binary and the hash_ceiling example).
For each backend (SQLite, and MariaDB when reachable) it seeds users straight into the
database with one precomputed hash, starts the server, and drives it with wrk from
loopback in bounded runs. It measures the limits in the same run (one argon2id verify on
one core; the /health rate) and prints every operation with requests/s, p50/p99 latency,
its ratio to the limit and the target, plus start-up time, idle and peak RSS.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "gotrue")
HASH_CEILING = os.path.join(ROOT, "target", "release", "examples", "hash_ceiling")
LUA = os.path.join(ROOT, "bench", "lua")
SECRET = "bench-secret-bench-secret-bench-secret"
OPERATOR = "bench-operator-token"
AUD = "bench"
NIL = "00000000-0000-0000-0000-000000000000"
MYSQL_DB = "gotrue_bench"

# (name, connections, target description, target predicate on (rps, limits))
TARGETS = {
    "password": "≥ 85% of hash ceiling",
    "signup": "≥ 85% of hash ceiling",
    "user": {"sqlite": "≥ 10000/s", "mysql": "≥ 5000/s"},
    "refresh": {"sqlite": "≥ 2000/s", "mysql": "≥ 1500/s"},
    "admin_list": "p50 < 100 ms",
    "admin_search": "p50 < 100 ms",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims):
    header = b64(json.dumps({"alg": "HS256", "kid": "nf-ident", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


def digest(token):
    return "h1:" + hashlib.sha256(token.encode()).hexdigest()


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mysql_reachable():
    try:
        return subprocess.run(["mysqladmin", "--protocol=tcp", "-h127.0.0.1", "-uroot", "ping"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def mysql(sql):
    subprocess.run(["mysql", "--protocol=tcp", "-h127.0.0.1", "-uroot"], input=sql.encode(), check=True)


def now_str():
    return datetime.datetime.now(datetime.timezone.utc)


class Seed:
    """Users user1..userN@example.com with password "password", confirmed."""

    def __init__(self, users, tokens, phc):
        self.users = users
        self.ids = [str(uuid.uuid4()) for _ in range(users)]
        self.tokens = [secrets.token_urlsafe(16)[:22] for _ in range(tokens)]
        self.phc = phc

    def rows(self, ts):
        for i, uid in enumerate(self.ids, start=1):
            email = f"user{i}@example.com"
            name = f"User {i}"
            meta = json.dumps({"full_name": name})
            # name_key is what the server writes beside the metadata (lower-cased full_name).
            yield (NIL, uid, AUD, "", email, email, name.lower(), self.phc, ts, ts, ts, '{"provider":"email"}', meta)

    def token_rows(self, ts):
        for i, t in enumerate(self.tokens):
            yield (NIL, digest(t), self.ids[i % len(self.ids)], ts, ts)


USER_COLS = "instance_id, id, aud, role, email, email_key, name_key, encrypted_password, confirmed_at, created_at, updated_at, raw_app_meta_data, raw_user_meta_data"
EMPTY_COLS = "confirmation_token, recovery_token, email_change_token, email_change, is_super_admin"


def seed_sqlite(path, seed):
    ts = now_str().isoformat()
    con = sqlite3.connect(path)
    con.executemany(
        f"INSERT INTO users ({USER_COLS}, {EMPTY_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,'','','','',0)", seed.rows(ts)
    )
    con.executemany("INSERT INTO refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at) VALUES (?,?,?,0,?,?)", seed.token_rows(ts))
    con.commit()
    con.execute("ANALYZE")
    con.close()


def sql_quote(v):
    return "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"


def seed_mysql(seed):
    ts = now_str().strftime("%Y-%m-%d %H:%M:%S")
    out = [f"USE {MYSQL_DB};", "SET autocommit=0;"]
    batch = []
    for r in seed.rows(ts):
        batch.append("(" + ",".join(sql_quote(v) for v in r) + ",'','','','',0)")
        if len(batch) == 2000:
            out.append(f"INSERT INTO users ({USER_COLS}, {EMPTY_COLS}) VALUES " + ",".join(batch) + ";")
            batch = []
    if batch:
        out.append(f"INSERT INTO users ({USER_COLS}, {EMPTY_COLS}) VALUES " + ",".join(batch) + ";")
    batch = []
    for r in seed.token_rows(ts):
        batch.append("(" + ",".join(sql_quote(v) for v in r) + ")")
        if len(batch) == 5000:
            out.append("INSERT INTO refresh_tokens (instance_id, token, user_id, created_at, updated_at) VALUES " + ",".join(batch) + ";")
            batch = []
    if batch:
        out.append("INSERT INTO refresh_tokens (instance_id, token, user_id, created_at, updated_at) VALUES " + ",".join(batch) + ";")
    out.append("UPDATE refresh_tokens SET revoked = 0; COMMIT; ANALYZE TABLE users, refresh_tokens;")
    mysql("\n".join(out))


class Server:
    def __init__(self, env, workdir):
        self.env = env
        self.workdir = workdir
        self.port = int(env["PORT"])
        self.proc = None

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.workdir, "server.log"), "ab"))
        deadline = t0 + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return (time.monotonic() - t0) * 1000
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited; see server.log")
            time.sleep(0.002)
        raise RuntimeError("server did not answer /health")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


WRK_RE = {
    "rps": re.compile(r"Requests/sec:\s+([\d.]+)"),
    "non2xx": re.compile(r"Non-2xx or 3xx responses:\s+(\d+)"),
    "total": re.compile(r"(\d+) requests in"),
    "p50": re.compile(r"50%\s+([\d.]+)(us|ms|s)"),
    "p99": re.compile(r"99%\s+([\d.]+)(us|ms|s)"),
    "errors": re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"),
}


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, script, args, conns, duration, threads=2):
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency", "--timeout", "10s", "-s", os.path.join(LUA, script), f"http://127.0.0.1:{port}", "--"] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    res = {"rps": float(WRK_RE["rps"].search(out).group(1)), "total": int(WRK_RE["total"].search(out).group(1))}
    m = WRK_RE["non2xx"].search(out)
    res["non2xx"] = int(m.group(1)) if m else 0
    e = WRK_RE["errors"].search(out)
    res["socket_errors"] = sum(int(x) for x in e.groups()) if e else 0
    for k in ("p50", "p99"):
        m = WRK_RE[k].search(out)
        res[k] = to_ms(m.group(1), m.group(2)) if m else None
    return res


TICK = os.sysconf("SC_CLK_TCK")


def busy_ticks():
    """Jiffies the whole machine spent busy (all cores), from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def proc_ticks(pid):
    """Jiffies one process spent on CPU (utime + stime), or 0 when it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def wrk_cpu(port, script, args, conns, duration, threads, server_pid):
    """One wrk run plus where the machine's CPU went meanwhile: the server, and everything
    else (the load generator, the database server, other processes), in cores."""
    b0, s0, t0 = busy_ticks(), proc_ticks(server_pid) if server_pid else 0, time.monotonic()
    res = wrk(port, script, args, conns, duration, threads)
    wall = time.monotonic() - t0
    busy = (busy_ticks() - b0) / TICK / wall
    server = ((proc_ticks(server_pid) - s0) / TICK / wall) if server_pid else 0.0
    res["cpu_server"] = round(server, 3)
    res["cpu_other"] = round(max(0.0, busy - server), 3)
    return res


def measure(name, port, script, args, conns, duration, runs, threads=2, server_pid=None):
    results = [wrk_cpu(port, script, args(i) if callable(args) else args, conns, duration, threads, server_pid) for i in range(runs)]
    results.sort(key=lambda r: r["rps"])
    med = results[len(results) // 2]
    med = dict(med)
    med["runs"] = [round(r["rps"], 1) for r in results]
    med["error_rate"] = sum(r["non2xx"] + r["socket_errors"] for r in results) / max(1, sum(r["total"] for r in results))
    log(f"  {name:<14} c={conns:<3} {med['rps']:>9.1f}/s  p50 {med['p50']:.2f} ms  p99 {med['p99']:.2f} ms  errors {med['error_rate']:.2%}  runs {med['runs']}"
        f"  cpu server {med['cpu_server']:.2f} other {med['cpu_other']:.2f} cores")
    return med


def bench_backend(backend, opts, phc, verify_ms):
    work = tempfile.mkdtemp(prefix=f"gotrue-bench-{backend}-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOTRUE_") and k not in ("DATABASE_URL", "PORT")}
    env.update({
        "PORT": str(port), "GOTRUE_API_HOST": "127.0.0.1", "GOTRUE_JWT_SECRET": SECRET, "GOTRUE_JWT_AUD": AUD,
        "GOTRUE_SITE_URL": "http://localhost", "GOTRUE_OPERATOR_TOKEN": OPERATOR, "GOTRUE_MAILER_AUTOCONFIRM": "true",
        "GOTRUE_LOG_LEVEL": opts.log_level,
        # The load generator is one client: the per-client limits would cap the benchmark.
        "GOTRUE_RATE_LIMIT_TOKEN": "0", "GOTRUE_RATE_LIMIT_SIGNUP": "0", "GOTRUE_RATE_LIMIT_VERIFY": "0",
        "GOTRUE_RATE_LIMIT_RECOVER": "0", "GOTRUE_RATE_LIMIT_INVITE": "0", "GOTRUE_RATE_LIMIT_EMAIL_SENT": "0",
        "GOTRUE_RATE_LIMIT_USER": "0", "GOTRUE_RATE_LIMIT_ADMIN": "0",
    })
    seed = Seed(opts.users, opts.tokens, phc)
    if backend == "sqlite":
        db = os.path.join(work, "bench.db")
        env.update({"GOTRUE_DB_DRIVER": "sqlite", "DATABASE_URL": db})
        subprocess.run([BIN, "migrate"], env=env, cwd=work, check=True, capture_output=True)
        t = time.monotonic()
        seed_sqlite(db, seed)
    else:
        mysql(f"DROP DATABASE IF EXISTS {MYSQL_DB}; CREATE DATABASE {MYSQL_DB};")
        env.update({"GOTRUE_DB_DRIVER": "mysql", "DATABASE_URL": f"root@tcp(127.0.0.1:3306)/{MYSQL_DB}?parseTime=true"})
        subprocess.run([BIN, "migrate"], env=env, cwd=work, check=True, capture_output=True)
        t = time.monotonic()
        seed_mysql(seed)
    log(f"{backend}: seeded {opts.users} users and {opts.tokens} refresh tokens in {time.monotonic() - t:.1f} s")
    with open(os.path.join(work, "tokens.txt"), "w") as f:
        f.write("\n".join(seed.tokens) + "\n")
    server = Server(env, work)
    startups = []
    for _ in range(3):
        startups.append(server.start())
        server.stop()
    startup = statistics.median(startups)
    server.start()
    time.sleep(1.0)
    idle = rss_kib(server.proc.pid, "VmRSS") / 1024
    token = jwt({"aud": AUD, "exp": int(time.time()) + 36000, "sub": seed.ids[0], "email": "user1@example.com", "app_metadata": {"provider": "email"}, "user_metadata": {}})
    d, r = opts.duration, opts.runs
    res = {"startup_ms": round(startup, 1), "idle_rss_mb": round(idle, 1)}
    try:
        log(f"{backend}: start-up {startup:.0f} ms, idle RSS {idle:.1f} MB")
        res["health"] = measure("health", port, "get.lua", ["/health", ""], 16, d, r, server_pid=server.proc.pid)
        res["user"] = measure("user", port, "get.lua", ["/user", token], 16, d, r, server_pid=server.proc.pid)
        res["refresh"] = measure("refresh", port, "tokens.lua", [os.path.join(work, "tokens.txt"), 2], 16, d, 1, server_pid=server.proc.pid)
        res["password"] = measure("password", port, "password.lua", [opts.users], 16, d, r, server_pid=server.proc.pid)
        res["signup"] = measure("signup", port, "signup.lua", lambda i: [f"{backend}{i}{secrets.token_hex(3)}"], 16, d, r, server_pid=server.proc.pid)
        res["password_c64"] = measure("password c=64", port, "password.lua", [opts.users], 64, d, 1, server_pid=server.proc.pid)
        res["peak_rss_mb"] = round(rss_kib(server.proc.pid, "VmHWM") / 1024, 1)
        log(f"{backend}: peak RSS {res['peak_rss_mb']} MB")
        admin_ok = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/admin/users?per_page=1", headers={"Authorization": f"Bearer {OPERATOR}"}), timeout=5).status == 200 if has_route(port, "/admin/users") else False
        if admin_ok:
            # Latency targets: one client at a time, so the figure is the query, not a queue.
            res["admin_list"] = measure("admin_list", port, "get.lua", ["/admin/users?page=1", OPERATOR], 1, d, r, threads=1, server_pid=server.proc.pid)
            res["admin_search"] = measure("admin_search", port, "get.lua", [f"/admin/users?filter=user{opts.users // 2}", OPERATOR], 1, d, r, threads=1, server_pid=server.proc.pid)
        else:
            log("  admin endpoints not available in this build; skipped")
    finally:
        server.stop()
        if backend == "mysql":
            mysql(f"DROP DATABASE IF EXISTS {MYSQL_DB};")
        shutil.rmtree(work, ignore_errors=True)
    return res


def has_route(port, path):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
    except urllib.error.HTTPError as e:
        return e.code != 404
    except OSError:
        return False
    return True


def verdict(op, backend, row, limits):
    rps = row["rps"]
    if op in ("password", "signup"):
        ratio = rps / limits["hash_ceiling"]
        return ratio, ratio >= 0.85
    if op == "user":
        need = 10000 if backend == "sqlite" else 5000
        return rps / limits["health"][backend], rps >= need
    if op == "refresh":
        need = 2000 if backend == "sqlite" else 1500
        return rps / limits["health"][backend], rps >= need
    if op.startswith("admin"):
        return rps / limits["health"][backend], (row["p50"] or 1e9) < 100
    return rps / limits["health"][backend], None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backends", default="sqlite,mysql")
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--tokens", type=int, default=150_000)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    opts = ap.parse_args()
    cores = os.cpu_count()
    params = ("19456", "2", "1")
    hc = json.loads(subprocess.run([HASH_CEILING, *params, "20", str(cores)], capture_output=True, text=True, check=True).stdout)
    # The ceiling is what every core hashing at once achieves (a shared host runs its cores
    # slower when all are busy); cores / one verify on an otherwise idle machine is shown too.
    single_ceiling = cores * 1000 / hc["verify_ms"]
    ceiling = hc.get("all_threads_per_s", single_ceiling)
    log(f"argon2id m=19456 t=2 p=1: one verify {hc['verify_ms']:.2f} ms on one core (cores / that = {single_ceiling:.1f}/s); "
        f"{cores} threads hashing together: {ceiling:.1f}/s = the hashing ceiling")
    backends = [b for b in opts.backends.split(",") if b]
    if "mysql" in backends and not mysql_reachable():
        log("MariaDB not reachable on 127.0.0.1:3306; skipping it")
        backends.remove("mysql")
    results = {}
    for b in backends:
        results[b] = bench_backend(b, opts, hc["hash"], hc["verify_ms"])
    limits = {"hash_ceiling": ceiling, "single_thread_ceiling": single_ceiling, "verify_ms": hc["verify_ms"], "health": {b: results[b]["health"]["rps"] for b in backends}}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    meta = {"date": datetime.date.today().isoformat(), "commit": commit, "cores": cores, "cpu": cpu, "users": opts.users, "duration_s": opts.duration, "runs": opts.runs, "log_level": opts.log_level}
    lines = [
        f"Measured {meta['date']} on {cores} cores ({cpu}), commit {commit}; {opts.users} seeded users; wrk, 2 threads, "
        f"median of {opts.runs} runs of {opts.duration} s; load generator on the same machine.",
        "",
        f"Limits measured in the same run: one argon2id verify (m=19456, t=2, p=1) {hc['verify_ms']:.1f} ms on one core (cores / that = {single_ceiling:.0f}/s); "
        f"{cores} threads verifying together {ceiling:.0f}/s = the hashing ceiling; "
        + ", ".join(f"`/health` {limits['health'][b]:.0f}/s on {b}" for b in backends) + ".",
        "",
        "| Backend | Operation | Conns | Requests/s | p50 ms | p99 ms | Ratio to limit | Target | Met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in backends:
        for op in ("health", "user", "refresh", "password", "signup", "password_c64", "admin_list", "admin_search"):
            row = results[b].get(op)
            if not row:
                continue
            base = op if op != "password_c64" else "password"
            ratio, ok = verdict(base, b, row, limits)
            target = TARGETS.get(base, "")
            if isinstance(target, dict):
                target = target[b]
            limit_name = "hash" if base in ("password", "signup") else "/health"
            conns = 64 if op == "password_c64" else (1 if op.startswith("admin") else 16)
            met = "" if ok is None else ("yes" if ok else "**no**")
            lines.append(f"| {b} | {op} | {conns} | {row['rps']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} | {ratio:.0%} of {limit_name} | {target} | {met} |")
    lines.append("")
    for b in backends:
        r = results[b]
        lines.append(f"- {b}: start-up to a served `/health` {r['startup_ms']} ms (target < 300), idle RSS {r['idle_rss_mb']} MB (target < 30), "
                     f"peak RSS {r.get('peak_rss_mb')} MB after 64 concurrent password logins (target < 150).")
    lines.append("")
    lines.append("Where the cores went during the hashing-bound runs (cores busy, from /proc): the server, and everything else "
                 "(wrk, the database server, the rest of the machine). The ceiling on the CPU left to the server is "
                 "the hashing ceiling × (cores − other) / cores.")
    lines.append("")
    lines.append("| Backend | Operation | Server cores | Other cores | Ceiling on the server's share | Ratio |")
    lines.append("|---|---|---|---|---|---|")
    for b in backends:
        for op in ("password", "signup", "password_c64"):
            row = results[b].get(op)
            if not row or "cpu_other" not in row:
                continue
            left = max(0.01, cores - row["cpu_other"])
            adj = left / cores * ceiling
            lines.append(f"| {b} | {op} | {row['cpu_server']:.2f} | {row['cpu_other']:.2f} | {adj:.0f}/s | {row['rps'] / adj:.0%} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "limits": limits, "results": results}, f, indent=1)
    with open(os.path.join(opts.out, "latest.md"), "w") as f:
        f.write(table + "\n")
    chart(results, backends, os.path.join(opts.out, "throughput.png"), meta)


def chart(results, backends, path, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing (pip install matplotlib); no chart")
        return
    ops = ["health", "user", "refresh", "password", "signup", "admin_list", "admin_search"]
    ops = [o for o in ops if any(o in results[b] for b in backends)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(backends)
    for i, b in enumerate(backends):
        vals = [results[b].get(o, {}).get("rps", 0) for o in ops]
        xs = [x + i * width for x in range(len(ops))]
        bars = ax.bar(xs, vals, width, label=b)
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks([x + width * (len(backends) - 1) / 2 for x in range(len(ops))])
    ax.set_xticklabels(ops)
    ax.set_ylabel("requests/s (log scale)")
    ax.set_title(f"gotrue-rs throughput, {meta['cores']} cores, {meta['date']} ({meta['commit']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"chart written to {path}")


if __name__ == "__main__":
    main()
