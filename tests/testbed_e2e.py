"""End-to-end test of kagi testbed: examples/testbed.yaml (four KMEs in a
chain, SAEs at both ends and in the middle) started as real processes, and
ETSI GS QKD 014 calls from python's ssl module, an independent client.

Oracles: what endpoints.json promises (absolute paths, the first pair two
or more hops apart, an outsider no KME lists); master and slave get
identical bytes of the requested size, through relay for the first pair;
the status codes and bodies of docs/etsi014.md (401 without a body, 400
with a message, 503 when the pool cannot serve: the testbed runs with
--max-key 65536, so a request for 128 keys of 8192 bits can never be
served); no TLS without a client certificate; no delivered key in any
KME's log; SIGTERM stops the testbed with exit 0 and leaves no KME
behind."""
import base64
import glob
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kme_common  # noqa: E402
from kme_common import Result, call, guarded  # noqa: E402

kagi = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/kagi")
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
scenario = os.path.join(repo, "examples", "testbed.yaml")
MAX_KEY = 65536
R = Result()
d = kme_common.tmpdir()
delivered = []   # (key_ID, bytes) handed to an SAE, for the log check


def conn(sae, url, timeout=10):
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ep["ca"])
    if sae:
        ctx.load_cert_chain(sae["cert"], sae["key"])
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=timeout)


def exchange(pair, number=2, size=256, wait_s=0.0):
    """master enc_keys at its KME, slave dec_keys of those key_IDs at its
    KME: (status, master's keys, status, slave's keys). While the KMEs are
    still meeting their peers a 503 is retried for up to wait_s."""
    m, s = pair["master"], pair["slave"]
    M = conn(m, m["kme_url"])
    t = time.time() + wait_s
    while True:
        st, js, _ = call(M, "POST", f"/api/v1/keys/{s['id']}/enc_keys", {"number": number, "size": size})
        if st != 503 or time.time() > t:
            break
        time.sleep(0.2)
    if st != 200:
        return st, js, None, None
    keys = js["keys"]
    delivered.extend((k["key_ID"], base64.b64decode(k["key"])) for k in keys)
    S = conn(s, s["kme_url"])
    st2, js2, _ = call(S, "POST", f"/api/v1/keys/{m['id']}/dec_keys",
                       {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]})
    return st, keys, st2, (js2.get("keys") if st2 == 200 and isinstance(js2, dict) else js2)


def same_keys(keys, keys2, number, size):
    return (isinstance(keys, list) and isinstance(keys2, list) and len(keys) == number
            and keys == keys2 and all(len(base64.b64decode(k["key"])) == size // 8 for k in keys)
            and len({k["key_ID"] for k in keys}) == number)


def section(name, fn):
    """A crash inside one group of checks fails it and lets the rest run."""
    try:
        fn()
    except Exception as e:
        traceback.print_exc()
        R.check(name + " ran to its end", False, repr(e))


def children_of(pid):
    out = []
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(st.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def alive_kme(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cl = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return b"kme" in cl and state != "Z"
    except OSError:
        return False


def refused_at_start():
    """Usage errors exit 2 with a message naming the culprit, before
    anything is started; names the KMEs cannot take are made valid."""
    base = open(scenario).read()
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write(base.replace("Chofu", "Cho fu"))
    p = subprocess.run([kagi, "testbed", bad, "--dir", os.path.join(d, "x")], capture_output=True,
                       text=True, timeout=30)
    R.check("a node name that is no KME id: exit 2 naming it and its line",
            p.returncode == 2 and "bad.yaml:" in p.stderr and "node 'Cho fu' cannot be a KME id" in p.stderr,
            (p.returncode, p.stderr))
    with open(bad, "w") as f:
        f.write(base.replace("id: frank", "id: Chofu"))
    p = subprocess.run([kagi, "testbed", bad, "--dir", os.path.join(d, "x")], capture_output=True,
                       text=True, timeout=30)
    R.check("an SAE named like a node: exit 2", p.returncode == 2 and "SAE 'Chofu' has the name of a node"
            in p.stderr, (p.returncode, p.stderr))
    p = subprocess.run([kagi, "testbed", scenario, "--dir", os.path.join(d, "x"), "--speedup", "0"],
                       capture_output=True, text=True, timeout=30)
    R.check("--speedup 0: exit 2", p.returncode == 2 and "--speedup" in p.stderr, (p.returncode, p.stderr))
    R.check("nothing was made for the refused runs", not os.path.exists(os.path.join(d, "x", "pki")))
    # two parallel links whose names clash once cut to 30 characters
    odd = os.path.join(d, "odd.yaml")
    with open(odd, "w") as f:
        f.write("nodes:\n  - {name: A, lat: 35, lon: 139}\n  - {name: B, lat: 35.1, lon: 139}\n"
                "links:\n  - {name: 'A to B fibre #1 of the northern duct', ends: [A, B], length_km: 10}\n"
                "  - {name: 'A to B fibre #1 of the northern duct (spare)', ends: [A, B], length_km: 10}\n"
                "saes:\n  - {id: a1, node: A}\n  - {id: b1, node: B}\n"
                "demands:\n  - {from: A, to: B, rate: 1000, master: a1, slave: b1}\n")
    p = subprocess.Popen([kagi, "testbed", odd, "--dir", os.path.join(d, "odd")], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    kme_common._procs.append(p)
    out = []
    for line in p.stdout:
        out.append(line)
        if line.startswith("testbed ready"):
            break
    p.send_signal(signal.SIGTERM)
    out.append(p.stdout.read())
    rc = p.wait(15)
    conf = open(os.path.join(d, "odd", "B", "kme.conf")).read()
    R.check("link names made KME link names: A-Z a-z 0-9 . _ -, 30 characters, unique",
            "[link A_to_B_fibre__1_of_the_norther]" in conf and "[link A_to_B_fibre__1_of_the_north-1]" in conf
            and "route" not in conf and rc == 0, (rc, conf, "".join(out)[-800:]))
    R.check("a scenario without a pair two hops apart: a warning", "no SAE pair is two or more hops apart"
            in "".join(out), out)


with guarded(R, d):
    section("refusals at start", refused_at_start)
    tbdir = os.path.join(d, "tb")
    err = open(os.path.join(d, "testbed.stderr"), "wb")
    tb = subprocess.Popen([kagi, "testbed", scenario, "--dir", tbdir, "--max-key", str(MAX_KEY)],
                          stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
    kme_common._procs.append(tb)
    lines = []
    ready = threading.Event()

    def reader():
        for line in tb.stdout:
            lines.append(line)
            if line.startswith("testbed ready:"):
                ready.set()
    threading.Thread(target=reader, daemon=True).start()
    t0 = time.time()
    ready.wait(30)
    R.check("testbed prints ready within 30 s", ready.is_set(),
            "".join(lines)[-1500:] + open(os.path.join(d, "testbed.stderr")).read()[-1500:])
    if not ready.is_set():
        raise RuntimeError("testbed not ready")
    R.check("one line per KME, then the ready line naming endpoints.json",
            sum(l.startswith("KME ") for l in lines) == 4 and
            f"testbed ready: 4 KMEs, endpoints in {tbdir}/endpoints.json" in "".join(lines), lines)
    kmes = children_of(tb.pid)
    R.check("four kagi kme children", len(kmes) == 4 and all(alive_kme(p) for p in kmes), kmes)

    with open(os.path.join(tbdir, "endpoints.json")) as f:
        ep = json.load(f)
    pairs = ep["pairs"]
    paths = [ep["ca"], ep["outsider"]["cert"], ep["outsider"]["key"]] + \
        [p[r][k] for p in pairs for r in ("master", "slave") for k in ("cert", "key")]
    R.check("endpoints.json: absolute paths to files that exist",
            all(os.path.isabs(p) and os.path.isfile(p) for p in paths), paths)
    R.check("endpoints.json: three pairs, the first alice -> bob across three hops",
            len(pairs) == 3 and pairs[0]["master"]["id"] == "alice" and pairs[0]["slave"]["id"] == "bob"
            and pairs[0]["hops"] == 3 and [p["hops"] for p in pairs] == [3, 1, 1], pairs)
    R.check("endpoints.json: KME URLs on 127.0.0.1, distinct ports",
            len(set(ep["kmes"].values())) == 4 and all(u.startswith("https://127.0.0.1:") for u in ep["kmes"].values())
            and pairs[0]["master"]["kme_url"] == ep["kmes"]["Otemachi"]
            and pairs[0]["slave"]["kme_url"] == ep["kmes"]["Koganei"], ep["kmes"])
    saes = {s["id"]: s for s in ep["saes"]}
    R.check("endpoints.json: the outsider is no SAE of the scenario",
            ep["outsider"]["id"] == "outsider" and "outsider" not in saes, ep["outsider"])
    conf = open(os.path.join(tbdir, "Otemachi", "kme.conf")).read()
    hak = ep["kmes"]["Hakusan"].rsplit(":", 1)[1]
    R.check("Otemachi's kme.conf: routes to the KMEs it has no link to, the peer's address",
            "route = Chofu via Hakusan,Chofu\n" in conf and "route = Koganei via Hakusan,Chofu,Koganei\n" in conf
            and f"peer_address = 127.0.0.1:{hak}\n" in conf and "sae = bob@Koganei\n" in conf, conf)
    relay, adjacent = pairs[0], pairs[1]
    local = {"master": saes["alice"], "slave": saes["erin"]}   # both at Otemachi

    def pools_filled():
        A = conn(saes["alice"], saes["alice"]["kme_url"])
        st, js, _ = call(A, "GET", "/api/v1/keys/erin/status")
        R.check("pools hold key at ready (the first blocks were ingested)",
                st == 200 and js["stored_key_count"] > 0 and js["source_KME_ID"] == "Otemachi", (st, js))
    section("pool check", pools_filled)

    def identical():
        st, keys, st2, keys2 = exchange(relay, 2, 256, wait_s=10)
        R.check("relay pair (3 hops): enc_keys 200 at the master's KME", st == 200, (st, keys))
        R.check("relay pair: dec_keys at the slave's KME gives identical keys of 256 bits",
                st2 == 200 and same_keys(keys, keys2, 2, 256), (st2, keys2))
        st, keys, st2, keys2 = exchange(relay, 1, 1024, wait_s=2)
        R.check("relay pair: a 1024-bit key is identical at both ends",
                st == 200 and st2 == 200 and same_keys(keys, keys2, 1, 1024), (st, st2, keys2))
        # a relayed key waits at the slave's KME for the slave alone
        A = conn(saes["alice"], relay["master"]["kme_url"])
        st, js, _ = call(A, "GET", "/api/v1/keys/bob/enc_keys")
        kid = js["keys"][0]["key_ID"] if st == 200 else "00000000-0000-4000-8000-000000000000"
        if st == 200:
            delivered.append((kid, base64.b64decode(js["keys"][0]["key"])))
        F = conn(saes["frank"], saes["frank"]["kme_url"])
        st3, js3, _ = call(F, "GET", f"/api/v1/keys/alice/dec_keys?key_ID={kid}")
        R.check("relay pair: another SAE at the slave's KME asking for the key gets 401 with no body",
                st == 200 and st3 == 401 and js3 is None, (st, st3, js3))
        B = conn(saes["bob"], relay["slave"]["kme_url"])
        st4, js4, _ = call(B, "GET", f"/api/v1/keys/alice/dec_keys?key_ID={kid}")
        R.check("relay pair: ... and the slave still gets it after that refusal",
                st4 == 200 and js4 == js, (st4, js4))
        st, keys, st2, keys2 = exchange(adjacent, 3, 512, wait_s=10)
        R.check("adjacent pair (1 hop): identical keys of 512 bits",
                st == 200 and st2 == 200 and same_keys(keys, keys2, 3, 512), (st, keys, st2, keys2))
        st, keys, st2, keys2 = exchange(local, 2, 256)
        R.check("same-KME pair (alice, erin at Otemachi): identical keys",
                st == 200 and st2 == 200 and same_keys(keys, keys2, 2, 256), (st, keys, st2, keys2))
    section("identical keys", identical)

    def refusals():
        # 401: the outsider, with a valid certificate of the testbed's CA
        for name, url in sorted(ep["kmes"].items()):
            O = conn(ep["outsider"], url)
            st, js, _ = call(O, "GET", "/api/v1/keys/bob/status")
            st2, js2, _ = call(O, "POST", "/api/v1/keys/bob/enc_keys", {"number": 1})
            R.check(f"the outsider gets 401 with no body at {name}",
                    st == 401 and js is None and st2 == 401 and js2 is None, (st, js, st2, js2))
        # 401: a key asked for by an SAE it was not issued to
        A = conn(saes["alice"], saes["alice"]["kme_url"])
        E = conn(saes["erin"], saes["erin"]["kme_url"])
        st, js, _ = call(A, "GET", "/api/v1/keys/erin/enc_keys")
        kid = js["keys"][0]["key_ID"] if st == 200 else "00000000-0000-4000-8000-000000000000"
        if st == 200:
            delivered.append((kid, base64.b64decode(js["keys"][0]["key"])))
        st2, js2, _ = call(E, "GET", f"/api/v1/keys/erin/dec_keys?key_ID={kid}")
        R.check("the slave naming a master that did not issue the key gets 401 with no body",
                st == 200 and st2 == 401 and js2 is None, (st, st2, js2))
        # 400: a second dec_keys of a delivered key; a bad size
        st3, js3, _ = call(E, "GET", f"/api/v1/keys/alice/dec_keys?key_ID={kid}")
        st4, js4, _ = call(E, "GET", f"/api/v1/keys/alice/dec_keys?key_ID={kid}")
        R.check("dec_keys of a delivered key a second time is 400 'not found'",
                st3 == 200 and st4 == 400 and js4 == {"message": f"key_ID {kid} not found"}, (st3, st4, js4))
        st5, js5, _ = call(A, "POST", "/api/v1/keys/erin/enc_keys", {"number": 1, "size": 100})
        R.check("enc_keys with size 100 is 400 'size shall be a multiple of 8'",
                st5 == 400 and js5 == {"message": "size shall be a multiple of 8"}, (st5, js5))
        m, s = adjacent["master"], adjacent["slave"]
        M = conn(m, m["kme_url"])
        st6, js6, _ = call(M, "POST", f"/api/v1/keys/{s['id']}/enc_keys", {"number": 1, "size": 16})
        R.check("enc_keys with a size below min_key_size is 400 with a message",
                st6 == 400 and "outside" in js6.get("message", ""), (st6, js6))
        # 503: more key than --max-key lets a link ever hold
        for label, p in (("same-KME", local), ("adjacent", adjacent), ("relay", relay)):
            m, s = p["master"], p["slave"]
            M = conn(m, m["kme_url"])
            st, js, _ = call(M, "GET", f"/api/v1/keys/{s['id']}/status")
            n, size = js["max_key_per_request"], js["max_key_size"]
            assert n * size // 8 > MAX_KEY, (n, size)
            st2, js2, _ = call(M, "POST", f"/api/v1/keys/{s['id']}/enc_keys", {"number": n, "size": size})
            R.check(f"503 with a message for more key than the {label} link can hold ({n} x {size} bits)",
                    st == 200 and st2 == 503 and isinstance(js2, dict) and js2.get("message"), (st, st2, js2))
        # no client certificate: no TLS session, no HTTP answer
        for name, url in sorted(ep["kmes"].items()):
            port = int(url.rsplit(":", 1)[1])
            ctx = ssl.create_default_context(cafile=ep["ca"])
            refused = False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as so:
                    with ctx.wrap_socket(so, server_hostname="127.0.0.1") as t:
                        t.sendall(b"GET /api/v1/keys/bob/status HTTP/1.1\r\nHost: x\r\n\r\n")
                        refused = t.recv(4096) == b""
            except (ssl.SSLError, ConnectionError, OSError):
                refused = True
            R.check(f"no client certificate: the handshake with {name} fails", refused)
    section("refusals", refusals)

    # SIGTERM: exit 0 within a few seconds, no KME left
    kmes = children_of(tb.pid) or kmes
    tb.send_signal(signal.SIGTERM)
    try:
        rc = tb.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    time.sleep(0.2)
    left = [p for p in kmes if alive_kme(p)]
    R.check("SIGTERM: the testbed exits 0 within 15 s", rc == 0,
            (rc, open(os.path.join(d, "testbed.stderr")).read()[-1500:]))
    R.check("SIGTERM: no kagi kme child remains", len(kmes) == 4 and not left, (kmes, left))
    R.check("SIGTERM: the testbed says the KMEs stopped cleanly",
            any("4 KMEs stopped cleanly" in l for l in lines), lines[-3:])

    # the logs: key_IDs, never key material
    logs = "".join(open(p, errors="replace").read() for p in glob.glob(os.path.join(tbdir, "*", "kme.log")))
    leaks = [k for k, b in delivered if b and (base64.b64encode(b).decode() in logs or b.hex() in logs
                                              or b.hex().upper() in logs)]
    R.check("no KME log holds a delivered key (base64 or hex)", delivered and not leaks, (len(delivered), leaks))
    R.check("the logs name delivered key_IDs", delivered and all(k in logs for k, _ in delivered))
    R.check("the whole test took under 60 s", time.time() - t0 < 60, time.time() - t0)
R.finish()
