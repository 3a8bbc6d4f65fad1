"""Crash test of kagi kme: four clients stream enc_keys (master SAE_A) and
dec_keys (slave SAE_B) while the KME is killed with SIGKILL at a random
moment, twice, and restarted; then the slave fetches every key the master
got.

Oracles, across the whole run:
- no key_ID is handed to the master twice, none to the slave twice;
- every key is one 32-byte unit of the device's bytes, and no unit is
  handed out under two key_IDs (no double delivery after a restart);
- every key the master received is still retrievable by the slave after
  the crashes, except those whose dec_keys was in flight at a kill (their
  removal may have been committed with the response lost: at most once);
- accounting: keys at the start = keys the master received + keys lost
  in enc_keys responses in flight at the kills (bounded by what was in
  flight) + keys still stored."""
import base64
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kme_common import Kme, Result, block_file, call, guarded, tmpdir  # noqa: E402

kagi = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/kagi")
R = Result()
d = tmpdir()
rng = random.Random(int(os.environ.get("KAGI_CRASH_SEED", str(int(time.time())))))
with guarded(R, d):
    subprocess.run([kagi, "kme", "--make-pki", d, "--names", "KME_A,SAE_A,SAE_B,SAE_C"], check=True,
                   capture_output=True)
    subprocess.run([kagi, "kme", "--new-store-key", f"{d}/store.key"], check=True, capture_output=True)
    os.mkdir(f"{d}/spool")
    blocks = [os.urandom(65536) for _ in range(12)]  # 24,576 keys: two rounds never run the pool dry
    dev = b"".join(blocks)
    unit_at = {dev[i:i + 32]: i for i in range(0, len(dev), 32)}
    total = len(dev) // 32
    R.check("device units are distinct", len(unit_at) == total)
    for i, b in enumerate(blocks):
        block_file(f"{d}/spool", "loop", i + 1, b)
    kme = Kme(kagi, d)
    kme.start()

    def stored():
        c = kme.conn("SAE_A")
        st, js, _ = call(c, "GET", "/api/v1/keys/SAE_B/status")
        c.close()
        return js["stored_key_count"] if st == 200 else -1

    t = time.time() + 20
    while time.time() < t and stored() != total:
        time.sleep(0.05)
    R.check("the pool holds the device's keys", stored() == total)

    lock = threading.Lock()
    issued, fetched = {}, {}
    dup_enc, dup_dec, mismatch, errors = [], [], [], []
    lost_enc_bound = 0
    lost_dec = set()

    def stream(i, inflight, stop):
        A, B = kme.conn("SAE_A", timeout=5), kme.conn("SAE_B", timeout=5)
        mine = []
        r = random.Random(rng.random())
        while not stop.is_set():
            n = r.randint(1, 4)
            inflight[i] = ("enc", n)
            try:
                st, js, _ = call(A, "POST", "/api/v1/keys/SAE_B/enc_keys", {"number": n})
            except Exception:
                return
            inflight[i] = None
            if st != 200:
                errors.append(("enc", st, js))
                return
            with lock:
                for k in js["keys"]:
                    if k["key_ID"] in issued:
                        dup_enc.append(k["key_ID"])
                    issued[k["key_ID"]] = base64.b64decode(k["key"])
            mine += [k["key_ID"] for k in js["keys"]]
            if mine and r.random() < 0.7:
                ids, mine = mine[:3], mine[3:]
                inflight[i] = ("dec", ids)
                try:
                    st, js, _ = call(B, "POST", "/api/v1/keys/SAE_A/dec_keys",
                                     {"key_IDs": [{"key_ID": x} for x in ids]})
                except Exception:
                    return
                inflight[i] = None
                if st != 200:
                    errors.append(("dec", st, js))
                    return
                with lock:
                    for k in js["keys"]:
                        if k["key_ID"] in fetched:
                            dup_dec.append(k["key_ID"])
                        b = base64.b64decode(k["key"])
                        fetched[k["key_ID"]] = b
                        if issued.get(k["key_ID"]) != b:
                            mismatch.append(k["key_ID"])

    for rnd in range(2):
        stop = threading.Event()
        inflight = [None] * 4
        th = [threading.Thread(target=stream, args=(i, inflight, stop)) for i in range(4)]
        for x in th:
            x.start()
        time.sleep(rng.uniform(0.3, 1.2))
        kme.kill9()
        stop.set()
        for x in th:
            x.join()
        for f in inflight:
            if f and f[0] == "enc":
                lost_enc_bound += f[1]
            elif f and f[0] == "dec":
                lost_dec.update(f[1])
        kme.start()
    R.check("the stream ran through the kills without other errors", not errors, errors[:3])
    R.check("the stream delivered keys", len(issued) > 50 and len(fetched) > 20, (len(issued), len(fetched)))

    # The slave fetches everything the master got and has not yet fetched.
    B = kme.conn("SAE_B")
    todo = [k for k in issued if k not in fetched]
    gone_unexpected, gone_inflight = [], []
    for j in range(0, len(todo), 32):
        ids = todo[j:j + 32]
        st, js, _ = call(B, "POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": x} for x in ids]})
        if st == 200:
            for k in js["keys"]:
                b = base64.b64decode(k["key"])
                if k["key_ID"] in fetched:
                    dup_dec.append(k["key_ID"])
                fetched[k["key_ID"]] = b
                if issued.get(k["key_ID"]) != b:
                    mismatch.append(k["key_ID"])
            continue
        for x in ids:   # one by one to see which
            st, js, _ = call(B, "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={x}")
            if st == 200:
                b = base64.b64decode(js["keys"][0]["key"])
                fetched[x] = b
                if issued.get(x) != b:
                    mismatch.append(x)
            elif x in lost_dec:
                gone_inflight.append(x)
            else:
                gone_unexpected.append((x, st, js))
    R.check("no key_ID reached the master twice", not dup_enc, dup_enc[:3])
    R.check("no key_ID reached the slave twice", not dup_dec, dup_dec[:3])
    R.check("slave and master hold identical keys", not mismatch, mismatch[:3])
    R.check("every key the master got is retrievable by the slave after the kills",
            not gone_unexpected, gone_unexpected[:3])
    R.check("only dec_keys responses in flight at a kill were lost",
            len(gone_inflight) <= len(lost_dec), (len(gone_inflight), len(lost_dec)))
    offs = [unit_at.get(b) for b in issued.values()]
    R.check("every key is a unit of the device's bytes", None not in offs)
    R.check("no unit was handed out twice", len(set(offs)) == len(offs), (len(offs), len(set(offs))))
    left = stored()
    lost_enc = total - len(issued) - left
    R.check(f"accounting: {total} = {len(issued)} delivered + {lost_enc} lost in flight + {left} stored",
            0 <= lost_enc <= lost_enc_bound, (lost_enc, lost_enc_bound))
    rc = kme.term()
    R.check("SIGTERM after the crashes: clean exit", rc == 0, rc)
    log = open(f"{d}/kme.log").read()
    R.check("restarts found the issued keys in the store", log.count("serving ETSI GS QKD 014") == 3)
R.finish()
