"""A self-signed certificate for https://localhost, made once and kept in the user data dir.

Browsers give microphone access, Cache Storage and WebGPU only to secure contexts; 127.0.0.1 and
localhost count as secure over plain HTTP too, but HTTPS also works when the page is opened by a
LAN name, and it is what the design asks for. The key is made with `cryptography` when installed,
else with the `openssl` command.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess

from voxtral.errors import VoxtralError

CERT_NAME, KEY_NAME = "localhost-cert.pem", "localhost-key.pem"
VALID_DAYS = 825


def data_dir() -> str:
    """$VOXTRAL_DATA_DIR, else $XDG_DATA_HOME/voxtral, else ~/.local/share/voxtral."""
    if os.environ.get("VOXTRAL_DATA_DIR"):
        return os.environ["VOXTRAL_DATA_DIR"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "voxtral")


def ensure_certificate(directory: str | None = None, hosts: tuple[str, ...] = ()) -> tuple[str, str, bool]:
    """(cert path, key path, created now). Reused when present, loadable and naming every host
    asked for (`voxtral serve --host NAME`); otherwise a new one is made, naming those hosts and
    the old certificate's too (a browser refuses a certificate without the name it was opened by)."""
    d = os.path.join(directory or data_dir(), "tls")
    cert, key = os.path.join(d, CERT_NAME), os.path.join(d, KEY_NAME)
    names = ["localhost", "127.0.0.1", "::1", *[h for h in hosts if h not in ("0.0.0.0", "::", "")]]
    if os.path.exists(cert) and os.path.exists(key):
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            have = certificate_names(cert)
            if {_norm(n) for n in names} <= have:
                return cert, key, False
            names += sorted(have)  # keep serving the names it had
        except (ssl.SSLError, OSError, ValueError):
            pass  # unreadable: make a new one
    os.makedirs(d, mode=0o700, exist_ok=True)
    try:
        _make_with_cryptography(cert, key, names)
    except ImportError:
        _make_with_openssl(cert, key, names)
    os.chmod(key, 0o600)
    return cert, key, True


def _make_with_cryptography(cert_path: str, key_path: str, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voxtral dev server")])
    sans = []
    for n in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _make_with_openssl(cert_path: str, key_path: str, names: list[str]) -> None:
    if not shutil.which("openssl"):
        raise VoxtralError("cannot make a TLS certificate: install the `cryptography` package or `openssl`")
    san = ",".join(("IP:" if _is_ip(n) else "DNS:") + n for n in dict.fromkeys(names))
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", key_path, "-out", cert_path, "-days", str(VALID_DAYS),
           "-subj", "/CN=localhost/O=voxtral dev server", "-addext", f"subjectAltName={san}"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise VoxtralError(f"openssl could not make a certificate: {r.stdout.strip()}")


def certificate_names(cert_path: str) -> set[str]:
    """The DNS names and IP addresses (normalized by _norm) in a PEM certificate's subjectAltName."""
    try:
        from cryptography import x509
    except ImportError:
        x509 = None
    if x509 is not None:
        c = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return set()
        return {_norm(str(v)) for v in san.get_values_for_type(x509.DNSName)} | \
               {_norm(str(v)) for v in san.get_values_for_type(x509.IPAddress)}
    r = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", cert_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(f"openssl could not read {cert_path}: {r.stderr.strip()}")
    out = set()
    for part in r.stdout.replace("\n", ",").split(","):
        kind, _, value = part.strip().partition(":")
        if kind in ("DNS", "IP Address") and value:
            out.add(_norm(value))
    return out


def _norm(name: str) -> str:
    """One spelling per name: IP addresses in their compressed form, DNS names in lower case."""
    try:
        return str(ipaddress.ip_address(name.strip()))
    except ValueError:
        return name.strip().lower()


def _is_ip(n: str) -> bool:
    try:
        ipaddress.ip_address(n)
        return True
    except ValueError:
        return False


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
