"""The peer protocol across three real KMEs in a chain, A - B - C, each fed by
a directory device with known block files (the same bytes at both ends of
each link), driven over mutual TLS by python's ssl module.

Oracles: the device's bytes (A's id sorts before B's, so A spends the first
half of every block of link ab, B the second; likewise on bc); the slave's
KME hands out the same bytes as the master's; docs/peer.md's refusals
(a replayed position, an altered one-time-padded key, a stranger's path);
a dead hop loses the keys in flight and never reuses them."""
import base64
import json
import os
import random
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kme_common import Result, block_file, call, guarded, make_ca, make_cert, tmpdir  # noqa: E402
import kme_common  # noqa: E402

kagi = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/kagi")
R = Result()
d = tmpdir()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Node(kme_common.Kme):
    """A KME of the chain, with its own folder and configuration."""

    def __init__(self, name, port, links, routes, saes):
        nd = f"{d}/{name}"
        os.makedirs(nd)
        with open(f"{nd}/store.key", "wb") as f:
            f.write(os.urandom(32))
        os.chmod(f"{nd}/store.key", 0o600)
        conf = [f"kme_id = {name}", f"listen = 127.0.0.1:{port}", f"cert = {d}/{name}.pem",
                f"key = {d}/{name}.key", f"client_ca = {d}/ca.pem", f"store = {nd}/kme.db",
                f"store_key = {nd}/store.key", f"ready_file = {nd}/ready", f"log = {nd}/kme.log",
                "log_level = info", "timeout = 5"]
        conf += [f"route = {r}" for r in routes]
        conf += [f"sae = {s}" for s in saes]
        for link, peer, pport in links:
            os.makedirs(f"{nd}/spool-{link}")
            conf += [f"[link {link}]", f"peer = {peer}", f"peer_address = 127.0.0.1:{pport}", "source = dir",
                     f"dir = {nd}/spool-{link}", "poll_ms = 20"]
        with open(f"{nd}/kme.conf", "w") as f:
            f.write("\n".join(conf) + "\n")
        self.kagi, self.d, self.port, self.name = kagi, nd, port, name
        self.proc = None

    def ctx(self, who, ca="ca"):
        c = kme_common.ssl.create_default_context(cafile=f"{d}/ca.pem")
        if who:
            c.load_cert_chain(f"{d}/{who}.pem", f"{d}/{who}.key")
        return c


def enc(node, master, slave, number=1, size=256):
    return call(node.conn(master), "POST", f"/api/v1/keys/{slave}/enc_keys", {"number": number, "size": size})


def dec(node, slave, master, ids):
    return call(node.conn(slave), "POST", f"/api/v1/keys/{master}/dec_keys",
                {"key_IDs": [{"key_ID": i} for i in ids]})


def keys_of(js):
    return [(k["key_ID"], base64.b64decode(k["key"])) for k in js["keys"]]


def wait_pool(node, master, slave, want, t=10):
    end = time.time() + t
    while time.time() < end:
        st, js, _ = call(node.conn(master), "GET", f"/api/v1/keys/{slave}/status")
        if st == 200 and js["stored_key_count"] >= want:
            return True
        time.sleep(0.05)
    return False


with guarded(R, d):
    make_ca(d, "ca")
    for cn in ["KME_A", "KME_B", "KME_C", "SAE_A", "SAE_B", "SAE_C"]:
        make_cert(d, cn, "ca")
    pa, pb, pc = free_port(), free_port(), free_port()
    saes = ["SAE_A@KME_A", "SAE_B@KME_B", "SAE_C@KME_C"]
    A = Node("KME_A", pa, [("ab", "KME_B", pb)], ["KME_C via KME_B,KME_C"], saes)
    B = Node("KME_B", pb, [("ab", "KME_A", pa), ("bc", "KME_C", pc)], [], saes)
    C = Node("KME_C", pc, [("bc", "KME_B", pb)], ["KME_A via KME_B,KME_A"], saes)
    # The devices: one block of 2048 bytes per link, the same at both ends.
    dev_ab = random.Random(1001).randbytes(2048)
    dev_bc = random.Random(1002).randbytes(2048)
    for n, link, dev in [(A, "ab", dev_ab), (B, "ab", dev_ab), (B, "bc", dev_bc), (C, "bc", dev_bc)]:
        block_file(f"{n.d}/spool-{link}", link, 1, dev)
    for n in (A, B, C):
        n.start()
    ready = [open(f"{n.d}/ready").read().strip() for n in (A, B, C)]
    R.check("three KMEs serve on the ports their peers were told",
            ready == [f"127.0.0.1:{p}" for p in (pa, pb, pc)], ready)
    R.check("A's pool for SAE_B fills (its half of the block: 32 keys)", wait_pool(A, "SAE_A", "SAE_B", 32))
    wait_pool(B, "SAE_B", "SAE_C", 32)
    wait_pool(C, "SAE_C", "SAE_B", 32)
    st, js, _ = call(A.conn("SAE_A"), "GET", "/api/v1/keys/SAE_C/status")
    R.check("status for a slave two hops away names its KME", st == 200 and js["target_KME_ID"] == "KME_C"
            and js["stored_key_count"] == 32, js)

    # Neighbours: A's direction of ab is the first half of the block.
    st, js, _ = enc(A, "SAE_A", "SAE_B", number=3)
    ka = keys_of(js) if st == 200 else []
    R.check("enc_keys for an SAE at the neighbour KME: 200, 3 keys", st == 200 and len(ka) == 3, (st, js))
    R.check("the keys are the first half of link ab's block, in order",
            b"".join(k for _, k in ka) == dev_ab[:96])
    st, js, _ = dec(B, "SAE_B", "SAE_A", [i for i, _ in ka])
    R.check("the slave gets identical keys at its own KME", st == 200 and keys_of(js) == ka, (st, js))
    st, js, _ = dec(B, "SAE_B", "SAE_A", [ka[0][0]])
    R.check("a second dec_keys for a delivered key: 400", st == 400 and "message" in js, (st, js))

    # Two hops: the key is ab's (A's half, next bytes), one-time padded on bc.
    st, js, _ = enc(A, "SAE_A", "SAE_C", number=2, size=512)
    kc = keys_of(js) if st == 200 else []
    R.check("enc_keys for an SAE two hops away: 200", st == 200 and len(kc) == 2, (st, js))
    R.check("the relayed keys are link ab's next bytes", b"".join(k for _, k in kc) == dev_ab[96:224])
    st, js, _ = dec(C, "SAE_C", "SAE_A", [i for i, _ in kc])
    R.check("the slave two hops away gets identical keys", st == 200 and keys_of(js) == kc, (st, js))
    st, js, _ = call(B.conn("SAE_B"), "GET", "/api/v1/keys/SAE_C/status")
    R.check("B spent 2 x (64 + 32) bytes of its half of bc on the pads and tags",
            st == 200 and js["stored_key_count"] == (1024 - 192) // 32, js)

    # The other way: C's direction of bc is the second half of the block.
    st, js, _ = enc(C, "SAE_C", "SAE_A", number=1)
    kr = keys_of(js) if st == 200 else []
    R.check("C to A through B: 200", st == 200 and len(kr) == 1, (st, js))
    R.check("the key is the second half of link bc's block", kr and kr[0][1] == dev_bc[1024:1056])
    st, js, _ = dec(A, "SAE_A", "SAE_C", [kr[0][0]] if kr else [str(uuid.uuid4())])
    R.check("A's SAE gets it", st == 200 and keys_of(js) == kr, (st, js))
    st, js, _ = dec(B, "SAE_B", "SAE_A", [kc[0][0]] if kc else [str(uuid.uuid4())])
    R.check("a key for SAE_C is not at B for SAE_B (400: unknown there)", st == 400, (st, js))

    # The peer protocol refuses what a stranger or a replay sends.
    msg = {"mode": "direct", "link": "ab", "master": "SAE_A", "slaves": ["SAE_B"], "path": ["KME_B"], "size": 32,
           "keys": [{"key_ID": str(uuid.uuid4()), "block": 1, "offset": 0}]}
    st, js, _ = call(B.conn("KME_A"), "POST", "/kagi/peer/v1/keys", msg)
    R.check("a replayed position (already spent) is refused: 400", st == 400 and "used or dropped" in js["message"],
            (st, js))
    st, js, _ = call(B.conn("SAE_A"), "POST", "/kagi/peer/v1/keys", msg)
    R.check("an SAE cannot speak the peer protocol", st in (401, 404), (st, js))
    bad = dict(msg, link="bc", keys=[{"key_ID": str(uuid.uuid4()), "block": 1, "offset": 1000}])
    st, js, _ = call(B.conn("KME_A"), "POST", "/kagi/peer/v1/keys", bad)
    R.check("a link that is not between sender and receiver: 400", st == 400 and "not a link between" in js["message"],
            (st, js))
    st, js, _ = call(B.conn("KME_A"), "POST", "/kagi/peer/v1/keys", dict(msg, extra=1))
    R.check("an unknown field: 400 naming it", st == 400 and '"extra"' in js["message"], (st, js))
    # An altered one-time-padded key: B -> C with a made-up tag, at positions
    # B has not spent yet (its half of bc, after the 192 bytes used above).
    fake = str(uuid.uuid4())
    otp = {"mode": "otp", "link": "bc", "master": "SAE_A", "slaves": ["SAE_C"], "path": ["KME_C"], "size": 32,
           "keys": [{"key_ID": fake, "block": 1, "offset": 600, "ct": base64.b64encode(bytes(32)).decode(),
                     "tag": "00" * 16}]}
    st, js, _ = call(C.conn("KME_B"), "POST", "/kagi/peer/v1/keys", otp)
    R.check("a key whose tag does not verify is refused: 400", st == 400 and "does not verify" in js["message"],
            (st, js))
    st, js, _ = dec(C, "SAE_C", "SAE_A", [fake])
    R.check("... and nothing was stored for the slave", st == 400, (st, js))

    # A dead hop: the keys taken for the request are lost, never reused.
    B.term()
    st, js, _ = enc(A, "SAE_A", "SAE_C", number=1)
    R.check("with B down, enc_keys for SAE_C: 503 naming the relay", st == 503 and "relay to KME KME_C" in js["message"],
            (st, js))
    B.start()
    st, js, _ = enc(A, "SAE_A", "SAE_C", number=1)
    kn = keys_of(js) if st == 200 else []
    R.check("B back: relay works again", st == 200 and len(kn) == 1, (st, js))
    # the forged message above made C drop B's bc key up to offset 664: B
    # learnt C's front from the refusal and dropped its own copy too
    R.check("B caught up with C's front on bc instead of failing for good",
            "starts at 1:664; key before it dropped here too" in open(f"{B.d}/kme.log").read())
    R.check("the key lost with B down was skipped, not reused", kn and kn[0][1] == dev_ab[256:288])
    st, js, _ = dec(C, "SAE_C", "SAE_A", [kn[0][0]] if kn else [str(uuid.uuid4())])
    R.check("... and SAE_C gets that key", st == 200 and keys_of(js) == kn, (st, js))

    # kill -9 of the middle KME during a stream of two-hop deliveries: every
    # key the master got is at the slave's KME exactly once, with the same
    # bytes; no stretch of link ab's key is ever in two keys.
    stream = bytearray(dev_ab[:1024])  # A's half of block 1, then of the new blocks
    for b in range(2, 14):
        blk = random.Random(b).randbytes(4096)  # no repeats: a key's place is unique
        stream += blk[:2048]
        for n, link in [(A, "ab"), (B, "ab"), (B, "bc"), (C, "bc")]:
            block_file(f"{n.d}/spool-{link}", link, b, blk)
    wait_pool(A, "SAE_A", "SAE_C", 12 * 64)
    wait_pool(B, "SAE_B", "SAE_C", 12 * 64)
    # (first) concurrent relays over the same links: each succeeds (a KME sends over
    # a link in the order it took the key, so none is refused as a replay).
    import threading
    results = []

    def burst():
        for _ in range(8):
            st, js, _ = enc(A, "SAE_A", "SAE_C", number=1)
            results.append((st, keys_of(js) if st == 200 else js))

    lost0 = open(f"{A.d}/kme.log").read().count("taken but not delivered")
    ths = [threading.Thread(target=burst) for _ in range(6)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    okk = [k for st, ks in results if st == 200 for k in ks]
    R.check("6 clients x 8 two-hop requests at once: all 200", len(okk) == 48,
            [r for r in results if r[0] != 200][:3])
    lost = open(f"{A.d}/kme.log").read().count("taken but not delivered") - lost0
    R.check("... with no key lost to messages overtaking each other", lost == 0, lost)
    st, js, _ = dec(C, "SAE_C", "SAE_A", [i for i, _ in okk[:40]])
    st2, js2, _ = dec(C, "SAE_C", "SAE_A", [i for i, _ in okk[40:]]) if len(okk) > 40 else (200, {"keys": []}, None)
    R.check("... and the slave gets all 48, identical and distinct",
            st == 200 and st2 == 200 and keys_of(js) + keys_of(js2) == okk and len({k for _, k in okk}) == len(okk),
            (st, st2))

    got, refused, killed, t0 = [], 0, False, time.time()
    while time.time() - t0 < 12 and len(got) < 80:
        if not killed and len(got) >= 25:
            B.kill9()
            killed = True
            down = time.time()
        if killed and B.proc.poll() is not None and time.time() - down > 0.3:
            B.start()
        try:
            st, js, _ = enc(A, "SAE_A", "SAE_C", number=1)
        except OSError:
            st, js = 0, None
        if st == 200:
            got += keys_of(js)
        else:
            refused += 1
    R.check("stream: keys delivered before and after B's kill -9", killed and len(got) >= 40 and refused >= 1,
            (len(got), refused))
    ids = [i for i, _ in got]
    R.check("stream: no key_ID twice at the master", len(set(ids)) == len(ids))
    at = [stream.find(k) for _, k in got]
    R.check("stream: every key is A's half of link ab's key, at strictly rising positions",
            all(a >= 0 and a % 32 == 0 for a in at) and all(x < y for x, y in zip(at, at[1:])), at[:10])
    ok = 0
    for i in range(0, len(got), 20):
        part = got[i:i + 20]
        st, js, _ = dec(C, "SAE_C", "SAE_A", [k for k, _ in part])
        ok += st == 200 and keys_of(js) == part
    R.check("stream: the slave gets every key the master got, identical", ok == (len(got) + 19) // 20, ok)
    st, js, _ = dec(C, "SAE_C", "SAE_A", ids[:1])
    R.check("stream: and only once (400 after)", st == 400, (st, js))

    rcs = [n.term() for n in (A, B, C)]
    R.check("all three stop cleanly on SIGTERM", rcs == [0, 0, 0], rcs)
    logs = "".join(open(f"{n.d}/kme.log").read() for n in (A, B, C))
    leaked = [k for _, k in ka + kc + kr + kn + got if base64.b64encode(k).decode() in logs or k.hex() in logs]
    R.check("no delivered key appears in any log (base64 or hex)", not leaked)
    R.check("the logs record the relays", "relayed to KME_C" in logs and "stored for the slaves" in logs)
R.finish()
