"""Fault injection on loopback: a TCP proxy in front of a real server (PostgreSQL, podid) that
passes traffic through, or drops every connection, refuses new ones, answers slowly, or answers
HTTP 500, as a test switches it."""

import socket
import threading
import time


class FaultProxy:
    """Listens on a free loopback port and forwards to `target` ("host:port").

    Modes: `pass`; `refuse` (new connections are closed at once, as while a server restarts);
    `slow` (each new connection waits `delay` seconds before anything is forwarded); `error500`
    (each request gets `HTTP/1.1 500` with an AWS-shaped JSON error); `throttle` (each request
    gets STS's `Throttling` error, `HTTP/1.1 400` with the query protocol's XML). `drop()` closes every open
    connection, as a server that goes away does."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.mode = "pass"
        self.delay = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.connections = set()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop(self):
        with self.lock:
            connections, self.connections = self.connections, set()
        for s in connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.drop()
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            mode = self.mode
            if mode == "refuse":
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    def _serve(self, client, mode):
        if mode in ("error500", "throttle"):
            client.settimeout(5)
            try:
                client.recv(65536)
                if mode == "error500":
                    body = b'{"__type":"ServerException","message":"injected fault"}'
                    head = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                            b"x-amzn-ErrorType: ServerException\r\n")
                else:
                    body = (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                            b"<Message>Rate exceeded</Message></Error><RequestId>injected</RequestId></ErrorResponse>")
                    head = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\n"
                client.sendall(head + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            client.close()
            return
        if mode == "slow":
            time.sleep(self.delay)
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.connections.update((client, upstream))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


class PostgresTlsFront:
    """A PostgreSQL front on loopback that speaks TLS the way a PostgreSQL server with `ssl = on`
    does (an `SSLRequest` answered `S`, then the handshake with `cert`/`key`), and forwards the
    decrypted protocol to the real server at `target`. A client that starts without TLS is
    forwarded as it is. `sessions` counts what each connection used: `tls` or `plain`."""

    SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"

    def __init__(self, target, cert, key):
        import ssl
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sessions = {"tls": 0, "plain": 0, "failed": 0}
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _count(self, kind):
        with self.lock:
            self.sessions[kind] += 1

    def _serve(self, client):
        client.settimeout(10)
        try:
            first = b""
            while len(first) < 8:
                chunk = client.recv(8 - len(first))
                if not chunk:
                    raise OSError("closed")
                first += chunk
            upstream = socket.create_connection(self.target, timeout=10)
            if first == self.SSL_REQUEST:
                client.sendall(b"S")
                client = self.context.wrap_socket(client, server_side=True)
                kind = "tls"
            else:
                upstream.sendall(first)
                kind = "plain"
        except Exception:  # noqa: BLE001 - a refused handshake is what some tests want
            self._count("failed")
            client.close()
            return
        self._count(kind)
        client.settimeout(None)
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for s in (source, sink):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
