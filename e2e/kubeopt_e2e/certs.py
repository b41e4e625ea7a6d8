"""Self-signed PKI for the e2e control plane, made with the ``openssl`` command line tool."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

VALID_DAYS = 7


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("the openssl command line tool is needed to make the e2e certificates")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")


def _ec_key_args() -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class CertificateAuthority:
    """A throwaway CA that signs serving and client certificates in ``directory``."""

    def __init__(self, directory: Path, common_name: str = "kubeopt-e2e-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.pair = KeyPair(cert=directory / "ca.crt", key=directory / "ca.key")
        _openssl(
            "req", "-x509", *_ec_key_args(),
            "-keyout", str(self.pair.key), "-out", str(self.pair.cert),
            "-days", str(VALID_DAYS), "-subj", f"/CN={common_name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=directory,
        )  # fmt: skip

    @property
    def cert(self) -> Path:
        return self.pair.cert

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        organizations: Sequence[str] = (),
        hosts: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        """Issue ``<name>.crt``/``<name>.key``; ``hosts`` are DNS names or IP addresses."""
        pair = KeyPair(cert=self.directory / f"{name}.crt", key=self.directory / f"{name}.key")
        csr = self.directory / f"{name}.csr"
        subject = "".join(f"/O={org}" for org in organizations) + f"/CN={common_name}"
        _openssl(
            "req", "-new", *_ec_key_args(), "-keyout", str(pair.key), "-out", str(csr),
            "-subj", subject,
            cwd=self.directory,
        )  # fmt: skip
        usages = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={','.join(usages or ['clientAuth'])}",
        ]
        if hosts:
            lines.append("subjectAltName=" + ",".join(_san(h) for h in hosts))
        ext = self.directory / f"{name}.ext"
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.pair.cert), "-CAkey", str(self.pair.key),
            "-set_serial", str(secrets.randbits(63)), "-days", str(VALID_DAYS), "-sha256",
            "-extfile", str(ext), "-out", str(pair.cert),
            cwd=self.directory,
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        return pair


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def service_account_keys(directory: Path) -> KeyPair:
    """An RSA key pair that signs service account tokens (``cert`` holds the public key)."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(cert=directory / "sa.pub", key=directory / "sa.key")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pair.key),
             cwd=directory)  # fmt: skip
    _openssl("pkey", "-in", str(pair.key), "-pubout", "-out", str(pair.cert), cwd=directory)
    return pair
