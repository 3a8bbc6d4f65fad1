"""Helpers for the KME tests: a PKI from the openssl command, block files,
a KME process, and ETSI GS QKD 014 calls over mutual TLS (python's ssl
module, an independent TLS client)."""
import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback


class Result:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, info=""):
        if cond:
            self.passed += 1
            print("ok   " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(info)[:600] if info != "" else ""), flush=True)
        return cond

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "2", "-subj", f"/CN={name}")


def make_cert(d, cn, ca, file=None):
    """A leaf certificate with CN=cn signed by ca; saved as file (default cn)."""
    f = file or cn
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/{f}.key", "-out", f"{d}/{f}.csr", "-subj", f"/CN={cn}")
    with open(f"{d}/{f}.ext", "w") as e:
        e.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", f"{d}/{f}.csr", "-CA", f"{d}/{ca}.pem", "-CAkey", f"{d}/{ca}.key",
            "-CAcreateserial", "-out", f"{d}/{f}.pem", "-days", "2", "-extfile", f"{d}/{f}.ext")


def block_file(spool, link, block_id, key, name=None):
    """A block file as docs/kme.md defines it, written atomically."""
    head = b"KAGIBLK1" + struct.pack("<QI", block_id, len(key)) + link.encode().ljust(32, b"\0")
    name = name or f"{link}-{block_id:020d}"
    tmp = os.path.join(spool, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head + key)
    os.rename(tmp, os.path.join(spool, name + ".key"))


CONFIG = """kme_id = KME_A
listen = 127.0.0.1:0
cert = {d}/KME_A.pem
key = {d}/KME_A.key
client_ca = {d}/ca.pem
store = {d}/kme.db
store_key = {d}/store.key
ready_file = {d}/ready
log = {d}/kme.log
log_level = info
key_size = 256
min_key_size = 64
max_key_size = 8192
max_keys_per_request = 32
max_sae_id_count = 2
max_key_count = 100000
body_limit = 4096
timeout = 2
sae = SAE_A
sae = SAE_B
sae = SAE_C
sae = SAE_R@KME_B
{extra}
[link loop]
peer = KME_A
source = dir
dir = {d}/spool
poll_ms = 50
[link ab]
peer = KME_B
peer_address = 127.0.0.1:9
source = none
"""


_procs = []


def _kill_all():
    """Never leave a KME behind, whatever happened in the test."""
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)


class Kme:
    def __init__(self, kagi, d, extra=""):
        self.kagi, self.d = kagi, d
        with open(f"{d}/kme.conf", "w") as f:
            f.write(CONFIG.format(d=d, extra=extra))
        self.proc = None

    def start(self, wait=True):
        try:
            os.unlink(f"{self.d}/ready")
        except FileNotFoundError:
            pass
        self.err = open(f"{self.d}/kme.stderr", "ab")
        self.proc = subprocess.Popen([self.kagi, "kme", "--config", f"{self.d}/kme.conf"],
                                     stdout=self.err, stderr=self.err, stdin=subprocess.DEVNULL)
        _procs.append(self.proc)
        if not wait:
            return
        t = time.time() + 20
        while time.time() < t:
            if os.path.exists(f"{self.d}/ready"):
                self.port = int(open(f"{self.d}/ready").read().strip().rsplit(":", 1)[1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError("kme exited: " + open(f"{self.d}/kme.stderr").read()[-2000:])
            time.sleep(0.02)
        raise RuntimeError("kme not ready")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def term(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def ctx(self, who, ca="ca"):
        c = ssl.create_default_context(cafile=f"{self.d}/ca.pem")
        if who:
            c.load_cert_chain(f"{self.d}/{who}.pem", f"{self.d}/{who}.key")
        return c

    def conn(self, who, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx(who), timeout=timeout)


def call(conn, method, path, body=None):
    """(status, parsed JSON or raw bytes, headers)."""
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    raw = r.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return r.status, parsed, r


def tmpdir():
    return tempfile.mkdtemp(prefix="kagi-kme-")


@contextlib.contextmanager
def guarded(R, d):
    """Run a test body: a crash of the test itself is a failure, not a hang;
    the scratch directory d goes whatever happens."""
    try:
        yield
    except Exception as e:
        traceback.print_exc()
        R.check("the test ran to its end", False, repr(e))
    finally:
        shutil.rmtree(d, ignore_errors=True)
