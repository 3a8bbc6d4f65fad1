"""A TCP proxy that flips one bit of the byte stream from the connecting
side at a given offset: an active attacker on the classical channel."""
import socket
import sys
import threading

listen_port, target_port, flip_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(1)
srv.settimeout(30)
print("ready", flush=True)
client, _ = srv.accept()
upstream = socket.create_connection(("127.0.0.1", target_port), timeout=30)


def pump(src, dst, flip):
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if flip is not None and seen <= flip < seen + len(data):
                b = bytearray(data)
                b[flip - seen] ^= 0x04
                data = bytes(b)
            seen += len(data)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


t1 = threading.Thread(target=pump, args=(client, upstream, flip_at))
t2 = threading.Thread(target=pump, args=(upstream, client, None))
t1.start(); t2.start(); t1.join(); t2.join()
