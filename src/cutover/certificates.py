"""The certificate credential: msal's ``client_credential`` for a certificate file.

msal signs a client assertion with the private key (the OAuth 2.0 client credentials flow with
a certificate credential). It wants a dict (msal ``ClientApplication`` docs):

* ``.pfx`` / ``.p12`` → ``{"private_key_pfx_path", "passphrase"}`` (msal ≥ 1.29, SHA-256
  thumbprint);
* a PEM file with the private key and the certificate (``openssl pkcs12 -nodes`` output) →
  ``{"private_key", "public_certificate"}``, from which msal ≥ 1.35 computes the SHA-256
  thumbprint; older msal also gets ``"thumbprint"`` (SHA-1, the legacy form).

The file is read and the key opened here, before any network traffic, so a missing file or a
wrong passphrase shows at once. The passphrase is asked for (a callable) only if the key is
encrypted, and never appears in a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msal

__all__ = ["certificate_credential"]

_PEM_KEY_RE = re.compile(r"-----BEGIN ((?:ENCRYPTED |RSA |EC )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL)
_PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _msal_version() -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", msal.__version__)[:3])


def certificate_credential(path: Path, passphrase: Callable[[], str] | None = None) -> dict:
    """msal's ``client_credential`` dict for a certificate file (ClientApplication docs):

    * ``.pfx`` / ``.p12`` → ``{"private_key_pfx_path", "passphrase"}`` (msal ≥ 1.29, SHA-256
      thumbprint);
    * PEM with the private key and the certificate (``openssl pkcs12 -nodes`` output) →
      ``{"private_key", "public_certificate"}`` from which msal (≥ 1.35) computes the SHA-256
      thumbprint; older msal also gets ``"thumbprint"`` (SHA-1, the legacy form).

    ``passphrase`` is called only if the key is encrypted. Raises ValueError with a readable
    reason (file missing, no key, no certificate, wrong passphrase)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the certificate file {path} ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".pfx", ".p12"):
        secret: str | None = None
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(raw, None)
        except ValueError:
            if passphrase is None:
                raise ValueError(
                    f"{path} is encrypted or not a PKCS#12 file, and no passphrase is configured"
                ) from None
            secret = passphrase()
            try:
                key, cert, _ = pkcs12.load_key_and_certificates(raw, secret.encode())
            except ValueError:
                raise ValueError(
                    f"{path} could not be opened with the configured passphrase (wrong passphrase, or not a PKCS#12 file)"
                ) from None
        if key is None or cert is None:
            raise ValueError(f"{path} must contain both the private key and the certificate")
        cred: dict[str, Any] = {"private_key_pfx_path": str(path)}
        if secret:
            cred["passphrase"] = secret
        return cred
    text = raw.decode("ascii", "replace")
    key_match, cert_match = _PEM_KEY_RE.search(text), _PEM_CERT_RE.search(text)
    if not key_match:
        raise ValueError(
            f"{path} holds no PEM private key; give a PEM file with the private key and the certificate, or a .pfx"
        )
    if not cert_match:
        raise ValueError(
            f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); add the certificate to the file, or use a .pfx"
        )
    key_pem, cert_pem = key_match.group(0), cert_match.group(0)
    secret = None
    if "ENCRYPTED" in key_match.group(1) or "Proc-Type: 4,ENCRYPTED" in key_pem:
        if passphrase is None:
            raise ValueError(f"the private key in {path} is encrypted and no passphrase is configured")
        secret = passphrase()
    try:
        serialization.load_pem_private_key(key_pem.encode(), secret.encode() if secret else None)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except (ValueError, TypeError) as exc:
        reason = "wrong passphrase or damaged key" if secret else type(exc).__name__
        raise ValueError(f"the key or certificate in {path} cannot be loaded ({reason})") from None
    cred = {"private_key": key_pem, "public_certificate": cert_pem}
    if secret:
        cred["passphrase"] = secret
    if _msal_version() < (1, 35):
        cred["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex()  # SHA-1: msal's legacy x5t
    return cred
