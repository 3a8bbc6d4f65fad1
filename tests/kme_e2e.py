"""End-to-end test of kagi kme: a throwaway PKI made with the openssl
command (a CA, the KME, three SAEs, an outsider of the same CA, and an
impostor from another CA), a KME fed by a directory device with known key
bytes, and ETSI GS QKD 014 calls from python's ssl module.

Oracles: the key bytes are the device's bytes in order; master and slave
get identical bytes; the exact status, error bodies and codes of
docs/etsi014.md; TLS refusals; the log holds key_IDs but no key."""
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kme_common import Kme, Result, block_file, call, guarded, make_ca, make_cert, tmpdir  # noqa: E402

kagi = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/kagi")
R = Result()
d = tmpdir()
with guarded(R, d):
    make_ca(d, "ca")
    make_ca(d, "otherca")
    for cn in ["KME_A", "SAE_A", "SAE_B", "SAE_C", "SAE_OUT"]:
        make_cert(d, cn, "ca")
    make_cert(d, "SAE_A", "otherca", file="IMPOSTOR")   # CN=SAE_A, wrong CA
    os.mkdir(f"{d}/spool")
    # The device's key: 1024 bytes in two blocks = 32 keys of 256 bits.
    dev = bytes((i * 7 + (i >> 8) * 13 + 5) & 0xFF for i in range(1024))
    block_file(f"{d}/spool", "loop", 1, dev[:640])
    block_file(f"{d}/spool", "loop", 2, dev[640:])

    # An at-rest key readable by others is refused before anything starts.
    kme = Kme(kagi, d)
    with open(f"{d}/store.key", "wb") as f:
        f.write(os.urandom(32))
    os.chmod(f"{d}/store.key", 0o644)
    p = subprocess.run([kagi, "kme", "--config", f"{d}/kme.conf"], capture_output=True, text=True, timeout=20)
    R.check("at-rest key with mode 0644 is refused", p.returncode == 1 and "mode 0644" in p.stderr
            and "chmod 600" in p.stderr, (p.returncode, p.stderr))
    R.check("no store was created with a refused key", not os.path.exists(f"{d}/kme.db"))
    os.chmod(f"{d}/store.key", 0o600)

    kme.start()
    with open(f"/proc/{kme.proc.pid}/limits") as f:
        core = [l for l in f if l.startswith("Max core file size")]
    R.check("core dumps are off (RLIMIT_CORE 0)", core and core[0].split()[4:6] == ["0", "0"], core)

    A = kme.conn("SAE_A")
    B = kme.conn("SAE_B")
    C = kme.conn("SAE_C")
    t = time.time() + 10
    while time.time() < t:
        st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/status")
        if st == 200 and js["stored_key_count"] == 32:
            break
        time.sleep(0.05)
    R.check("status has the ETSI fields and values", st == 200 and js == {
        "source_KME_ID": "KME_A", "target_KME_ID": "KME_A", "master_SAE_ID": "SAE_A",
        "slave_SAE_ID": "SAE_B", "key_size": 256, "stored_key_count": 32, "max_key_count": 100000,
        "max_key_per_request": 32, "max_key_size": 8192, "min_key_size": 64, "max_SAE_ID_count": 2}, js)
    R.check("directory device removed the ingested files", os.listdir(f"{d}/spool") == [],
            os.listdir(f"{d}/spool"))
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_R/status")
    R.check("status of an SAE at another KME names that KME", st == 200 and js["target_KME_ID"] == "KME_B"
            and js["stored_key_count"] == 0, js)

    off = 0
    delivered = []        # (key_ID, bytes) for the log check

    def take(n):
        global off
        b = dev[off:off + n]
        off += n
        return b

    # enc_keys (GET) then dec_keys (POST): identical bytes, the device's, in order.
    st, js, r = call(A, "GET", "/api/v1/keys/SAE_B/enc_keys?number=2")
    keys = js["keys"] if st == 200 else []
    ok = st == 200 and len(keys) == 2 and r.getheader("Content-Type") == "application/json"
    exp = [take(32), take(32)]
    R.check("enc_keys GET gives 2 keys of 256 bits", ok, (st, js))
    R.check("enc_keys keys are the device's bytes in order",
            ok and [base64.b64decode(k["key"]) for k in keys] == exp)
    R.check("key_IDs are distinct version-4 UUIDs", ok and all(
        str(uuid.UUID(k["key_ID"])) == k["key_ID"] and uuid.UUID(k["key_ID"]).version == 4 for k in keys)
        and keys[0]["key_ID"] != keys[1]["key_ID"])
    R.check("key responses are not cacheable", ok and r.getheader("Cache-Control") == "no-store")
    ids = [k["key_ID"] for k in keys]
    delivered += [(k["key_ID"], base64.b64decode(k["key"])) for k in keys]
    st, js2, _ = call(B, "POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": i} for i in ids]})
    R.check("dec_keys by the slave gives identical keys", st == 200 and js2 == js, (st, js2))
    st, js2, r = call(B, "POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": ids[0]}]})
    R.check("a second dec_keys of the same key_ID is 400 with a message",
            st == 400 and js2 == {"message": f"key_ID {ids[0]} not found"}, (st, js2))

    # POST enc_keys with size; GET dec_keys?key_ID=; the 401 of an SAE not named.
    st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", {"number": 1, "size": 512})
    R.check("enc_keys POST with size 512 gives 64 bytes of the device",
            st == 200 and base64.b64decode(js["keys"][0]["key"]) == take(64), (st, js))
    kid = js["keys"][0]["key_ID"] if st == 200 else "x"
    delivered.append((kid, base64.b64decode(js["keys"][0]["key"]) if st == 200 else b""))
    st, js3, r = call(C, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    R.check("an SAE not named for the key gets 401 with no body", st == 401 and js3 is None, (st, js3))
    st, js3, r = call(B, "GET", f"/api/v1/keys/SAE_B/dec_keys?key_ID={kid}")
    R.check("the slave naming the wrong master gets 401", st == 401 and js3 is None, (st, js3))
    st, js3, _ = call(B, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid.upper()}")
    R.check("dec_keys GET ?key_ID= (upper case) gives the key after the refusals", st == 200 and js3 == js,
            (st, js3))

    # Multicast: each named slave once.
    st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", {"additional_slave_SAE_IDs": ["SAE_C"],
                                                               "extension_optional": [{"x_hint": 1}]})
    R.check("enc_keys with an additional slave and extension_optional",
            st == 200 and base64.b64decode(js["keys"][0]["key"]) == take(32), (st, js))
    kid = js["keys"][0]["key_ID"] if st == 200 else "x"
    delivered.append((kid, base64.b64decode(js["keys"][0]["key"]) if st == 200 else b""))
    sb, jb, _ = call(B, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    sb2, jb2, _ = call(B, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    sc, jc, _ = call(C, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    sc2, jc2, _ = call(C, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    R.check("both slaves get the multicast key once", sb == 200 and sc == 200 and jb == js and jc == js
            and sb2 == 400 and jb2 == {"message": f"key_ID {kid} was already delivered to SAE_B"}
            and sc2 == 400 and jc2 == {"message": f"key_ID {kid} not found"}, (sb, sb2, jb2, sc, sc2, jc2))

    # 400s with their exact bodies; nothing is taken from the pool by them.
    bad = [
        ("size not a multiple of 8", "POST", "SAE_B/enc_keys", {"size": 100},
         {"message": "size shall be a multiple of 8"}),
        ("size below min_key_size", "GET", "SAE_B/enc_keys?size=16", None,
         {"message": "size 16 is outside min_key_size..max_key_size (64..8192)"}),
        ("number 0", "POST", "SAE_B/enc_keys", {"number": 0}, {"message": "number shall be at least 1"}),
        ("number over max_key_per_request", "GET", "SAE_B/enc_keys?number=33", None,
         {"message": "number 33 exceeds max_key_per_request (32)"}),
        ("unsupported extension_mandatory", "POST", "SAE_B/enc_keys",
         {"number": 1, "extension_mandatory": [{"abc_route_type": "direct"}]},
         {"message": "not all extension_mandatory parameters are supported",
          "details": [{"extension_mandatory_unsupported": "abc_route_type"}]}),
        ("unknown field", "POST", "SAE_B/enc_keys", {"nmber": 1}, {"message": "unknown field 'nmber'"}),
        ("number as a string", "POST", "SAE_B/enc_keys", {"number": "1"},
         {"message": "number shall be an integer"}),
        ("unknown slave SAE", "GET", "SAE_X/enc_keys", None, {"message": "unknown slave_SAE_ID SAE_X"}),
        ("master as its own slave", "GET", "SAE_A/enc_keys", None,
         {"message": "the master SAE cannot be one of its slaves"}),
        ("too many additional slaves", "POST", "SAE_B/enc_keys",
         {"additional_slave_SAE_IDs": ["SAE_C", "SAE_D", "SAE_E"]},
         {"message": "additional_slave_SAE_IDs has 3 entries, max_SAE_ID_count is 2"}),
        ("unknown query parameter", "GET", "SAE_B/enc_keys?count=1", None,
         {"message": "unknown query parameter 'count'"}),
        ("dec_keys with a non-UUID", "POST", "SAE_B/dec_keys", {"key_IDs": [{"key_ID": "nope"}]},
         {"message": "key_IDs[0].key_ID is not a UUID"}),
        ("dec_keys without key_IDs", "POST", "SAE_B/dec_keys", {},
         {"message": "key_IDs is missing"}),
    ]
    for name, m, path, body, want in bad:
        st, js, _ = call(A, m, "/api/v1/keys/" + path, body)
        R.check(f"400 for {name}", st == 400 and js == want, (st, js))
    st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", '{"number": 1,')
    R.check("400 for malformed JSON", st == 400 and js["message"].startswith("request body is not valid JSON"),
            (st, js))
    st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", '{"number": 1, "number": 2}')
    R.check("400 for a duplicated JSON field", st == 400 and "duplicate" in js["message"], (st, js))
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_R/enc_keys")
    R.check("503 for an SAE at a neighbour KME whose link holds no key (nothing sent to the peer)",
            st == 503 and js == {"message": "no key available"}, (st, js))
    st, js, _ = call(A, "GET", "/api/v1/nothing")
    R.check("404 for another path", st == 404 and js == {"message": "not found"}, (st, js))
    st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", "{" + " " * 5000 + "}")
    R.check("a body over body_limit is refused (413)", st == 413, (st, js))
    A = kme.conn("SAE_A")

    # 503 once the pool is empty, with nothing taken; the device refills it.
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/status")
    left = js["stored_key_count"]
    R.check("stored_key_count counts what is left", left == (1024 - off) // 32, (left, off))
    st, js, _ = call(A, "GET", f"/api/v1/keys/SAE_B/enc_keys?number={left + 1}")
    R.check("503 when the pool cannot serve the request", st == 503 and js == {"message": "no key available"},
            (st, js))
    st, js, _ = call(A, "GET", f"/api/v1/keys/SAE_B/enc_keys?number={left}")
    R.check("the rest of the pool, after the refused request", st == 200 and
            b"".join(base64.b64decode(k["key"]) for k in js["keys"]) == take(32 * left), (st, off))
    delivered += [(k["key_ID"], base64.b64decode(k["key"])) for k in (js or {}).get("keys", [])]
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/enc_keys")
    R.check("503 with the pool empty", st == 503 and js == {"message": "no key available"}, (st, js))
    more = os.urandom(64)
    block_file(f"{d}/spool", "loop", 3, more)
    t = time.time() + 5
    while time.time() < t:
        st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/enc_keys")
        if st == 200:
            break
        time.sleep(0.05)
    R.check("a new block file refills the pool", st == 200 and base64.b64decode(js["keys"][0]["key"]) == more[:32],
            (st, js))
    delivered += [(k["key_ID"], base64.b64decode(k["key"])) for k in (js or {}).get("keys", [])]
    block_file(f"{d}/spool", "loop", 2, os.urandom(64), name="replay")
    time.sleep(0.3)
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/status")
    R.check("a replayed block id is removed, not stored", st == 200 and js["stored_key_count"] == 1
            and os.listdir(f"{d}/spool") == [], (js, os.listdir(f"{d}/spool")))

    # curl, an independent client, interoperates.
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-s", "--cacert", f"{d}/ca.pem", "--cert", f"{d}/SAE_A.pem", "--key",
                            f"{d}/SAE_A.key", f"https://127.0.0.1:{kme.port}/api/v1/keys/SAE_B/status"],
                           capture_output=True, text=True, timeout=20)
        R.check("curl with SAE_A's certificate reads the status",
                p.returncode == 0 and json.loads(p.stdout or "{}").get("master_SAE_ID") == "SAE_A", p.stdout)

    # Outsider: a valid certificate of the same CA, not an SAE here.
    O = kme.conn("SAE_OUT")
    st, js, _ = call(O, "GET", "/api/v1/keys/SAE_B/status")
    st2, js2, _ = call(O, "GET", "/api/v1/keys/SAE_B/enc_keys")
    R.check("an outsider's certificate gets 401 with no body", st == 401 and js is None and st2 == 401
            and js2 is None, (st, js, st2, js2))

    # TLS refusals: no client certificate; a certificate of another CA.
    def tls_refused(who, tls12=False):
        ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if who:
            ctx.load_cert_chain(f"{d}/{who}.pem", f"{d}/{who}.key")
        try:
            with socket.create_connection(("127.0.0.1", kme.port), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    t.sendall(b"GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = t.recv(4096)
                    return data == b""
        except (ssl.SSLError, ConnectionError, OSError):
            return True
    R.check("no client certificate: TLS 1.3 connection refused, no HTTP answer", tls_refused(None))
    R.check("no client certificate: TLS 1.2 handshake fails", tls_refused(None, tls12=True))
    R.check("a certificate from another CA (CN=SAE_A) is refused", tls_refused("IMPOSTOR"))
    R.check("same with TLS 1.2", tls_refused("IMPOSTOR", tls12=True))

    # Clients that vanish with a request in the store: the keys it took are
    # logged as lost, the KME keeps serving.
    block_file(f"{d}/spool", "loop", 4, os.urandom(32 * 64))
    t = time.time() + 5
    while time.time() < t:
        st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/status")
        if js and js.get("stored_key_count", 0) >= 64:
            break
        time.sleep(0.05)
    before = js["stored_key_count"]
    req = b"GET /api/v1/keys/SAE_B/enc_keys HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(40):
        s0 = kme.ctx("SAE_A").wrap_socket(socket.create_connection(("127.0.0.1", kme.port), timeout=5),
                                          server_hostname="127.0.0.1")
        s0.sendall(req)
        s0.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s0.close()
    time.sleep(0.5)
    A = kme.conn("SAE_A")
    st, js, _ = call(A, "GET", "/api/v1/keys/SAE_B/status")
    taken = before - js["stored_key_count"]
    log_now = open(f"{d}/kme.log").read()
    R.check("vanishing clients: the KME still serves, each took at most its key",
            st == 200 and 0 <= taken <= 40 and kme.proc.poll() is None, (st, taken))
    R.check("keys taken for vanished clients are logged as lost",
            taken == 0 or "client gone before the response" in log_now or "closed in a request" in log_now
            or log_now.count("enc_keys SAE_A -> SAE_B: 200") >= taken, taken)

    # A slow client is cut off after the timeout (2 s).
    ctx = kme.ctx("SAE_A")
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", kme.port), timeout=10), server_hostname="127.0.0.1")
    s.sendall(b"GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    try:
        data = s.recv(4096)
    except (ssl.SSLError, OSError):
        data = b""
    dt = time.time() - t0
    s.close()
    R.check("a client sending half a request is disconnected after the timeout", data == b"" and 1.5 < dt < 5,
            (data[:80], dt))

    # Logs: deliveries by key_ID, refusals, never key material.
    rc = kme.term()
    R.check("SIGTERM stops the KME cleanly (exit 0)", rc == 0, rc)
    log = open(f"{d}/kme.log").read()
    R.check("log says it stopped cleanly", "stopped cleanly" in log)
    R.check("log names delivered key_IDs", all(k in log for k, _ in delivered), len(delivered))
    leaks = [k for k, b in delivered if b and (base64.b64encode(b).decode() in log or b.hex() in log
                                              or b.hex().upper() in log)]
    R.check("log holds no key material (base64 or hex)", not leaks and len(delivered) >= 30, leaks)
    R.check("log records the TLS refusals", log.count("TLS handshake with") >= 2 and "refused" in log)
    R.check("log records the outsider's 401", "SAE_OUT" in log and "401" in log)
    errlog = open(f"{d}/kme.stderr").read()
    R.check("nothing on stderr but the refused start", "AddressSanitizer" not in errlog and
            "runtime error" not in errlog, errlog[-1500:])
R.finish()
