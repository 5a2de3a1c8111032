"""serve/tls.py: the self-signed certificate covers the host `voxtral serve --host` is given.
Checked by real TLS handshakes with hostname verification (OpenSSL's, through the ssl module)
against the certificate as the only trusted root, not by reading the certificate back."""
from __future__ import annotations

import socket
import ssl
import threading

import pytest

from voxtral.serve.tls import ensure_certificate, server_ssl_context


def _handshake(cert: str, key: str, server_hostname: str) -> None:
    """Serve one TLS handshake on 127.0.0.1 with (cert, key); connect as a client that trusts
    only `cert` and checks it names `server_hostname`. Raises ssl.SSLCertVerificationError if not."""
    srv_ctx = server_ssl_context(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve():
        conn, _ = lsock.accept()
        try:
            with srv_ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client gave up: its error is the result

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cli = ssl.create_default_context(cafile=cert)
    try:
        with socket.create_connection(lsock.getsockname(), timeout=10) as raw:
            with cli.wrap_socket(raw, server_hostname=server_hostname):
                pass
    finally:
        t.join(10)
        lsock.close()


@pytest.mark.parametrize("maker", ["cryptography", "openssl"])
def test_certificate_is_remade_when_the_host_is_not_named(tmp_path, monkeypatch, maker):
    if maker == "openssl":
        import shutil
        if not shutil.which("openssl"):
            pytest.skip("no openssl command")
        monkeypatch.setitem(__import__("sys").modules, "cryptography", None)  # import fails: the CLI path
    cert, key, created = ensure_certificate(str(tmp_path))
    assert created
    _handshake(cert, key, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "voxtral-box.lan")
    # a host the certificate already names: reused as it is
    assert ensure_certificate(str(tmp_path), hosts=("127.0.0.1",))[2] is False
    # a LAN name it lacks: a new certificate naming it, and still localhost
    cert2, key2, created2 = ensure_certificate(str(tmp_path), hosts=("voxtral-box.lan",))
    assert created2 and (cert2, key2) == (cert, key)
    _handshake(cert, key, "voxtral-box.lan")
    _handshake(cert, key, "localhost")
    # an address: IP names are compared as addresses; the earlier LAN name is kept
    assert ensure_certificate(str(tmp_path), hosts=("10.1.2.3",))[2] is True
    _handshake(cert, key, "10.1.2.3")
    _handshake(cert, key, "voxtral-box.lan")
    for again in ("10.1.2.3", "VOXTRAL-BOX.lan", "0.0.0.0", "::1"):
        assert ensure_certificate(str(tmp_path), hosts=(again,))[2] is False, again
