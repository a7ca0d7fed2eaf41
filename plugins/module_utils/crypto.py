# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local crypto for certificates: PEM parsing, certificate ids, public keys, safe file writes.

Everything here works on local data only and never calls AWS:

* AWS IoT names a certificate by the lowercase hex SHA-256 of its DER bytes, so
  the id of a PEM is known before any call (``certificate_id``).
* A certificate made from a CSR or from an AWS-generated key is recognised on a
  later run by its public key (``public_key_der`` / ``same_public_key``).
* Private keys are written 0600 and certificates 0644, atomically: a temporary
  file in the target directory, created with the final mode whatever the umask,
  then ``os.replace``. ``PendingFile`` opens that temporary file *before* the AWS
  call that returns the content, so that a directory that cannot be written
  fails the task before a certificate exists, and the write after the call is
  the first thing that happens.

Errors in the input raise ``CryptoError`` (a ``ValueError``); callers turn them
into ``ValidationError(field, rule)`` with the option name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import traceback
from typing import Any, List, Optional, Union

try:
    from cryptography import x509
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives import serialization

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by ansible-test's import test
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

PRIVATE_KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644

CERTIFICATE_ID_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")

_PEM_BLOCK = re.compile(r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>.*?)-----END (?P=label)-----", re.S)
CERTIFICATE_LABELS = ("CERTIFICATE",)
CSR_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
PUBLIC_KEY_LABELS = ("PUBLIC KEY",)
PRIVATE_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY")

Text = Union[str, bytes]


class CryptoError(ValueError):
    """Local data that is not what it should be (not a PEM certificate, a bad CSR, ...)."""


def _text(data: Text) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise CryptoError("is not PEM text (it holds non-ASCII bytes)") from None
    return data


def pem_blocks(data: Text) -> List[tuple]:
    """Every ``(label, block_text)`` PEM block in ``data``, in order."""
    text = _text(data)
    return [(m.group("label"), m.group(0)) for m in _PEM_BLOCK.finditer(text)]


def _single_block(data: Text, labels: tuple, what: str) -> str:
    blocks = [block for label, block in pem_blocks(data) if label in labels]
    if not blocks:
        raise CryptoError(f"is not a PEM-encoded {what} (no '-----BEGIN {labels[0]}-----' block found)")
    if len(blocks) > 1:
        raise CryptoError(f"must hold exactly one PEM {what}, found {len(blocks)}")
    return blocks[0]


def _backend() -> Any:
    # cryptography before 3.1 (still found on Python 3.8 hosts) needs the backend; later versions ignore it.
    return default_backend()


def require_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise CryptoError("needs the Python library 'cryptography', which is not installed on the managed host")


def load_certificate(data: Text) -> Any:
    """The one X.509 certificate in ``data`` (PEM), or CryptoError."""
    require_cryptography()
    block = _single_block(data, CERTIFICATE_LABELS, "X.509 certificate")
    try:
        return x509.load_pem_x509_certificate(block.encode("ascii"), _backend())
    except ValueError as e:
        raise CryptoError(f"is not a valid PEM-encoded X.509 certificate ({e})") from None


def load_csr(data: Text) -> Any:
    """The one certificate signing request in ``data`` (PEM), with a valid self-signature, or CryptoError."""
    require_cryptography()
    block = _single_block(data, CSR_LABELS, "certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(block.encode("ascii"), _backend())
    except ValueError as e:
        raise CryptoError(f"is not a valid PEM-encoded certificate signing request ({e})") from None
    if not csr.is_signature_valid:
        raise CryptoError("is a certificate signing request whose signature does not verify")
    return csr


def load_private_key(data: Text) -> Any:
    """The unencrypted private key in ``data`` (PEM), or CryptoError."""
    require_cryptography()
    block = _single_block(data, PRIVATE_KEY_LABELS, "private key")
    try:
        return serialization.load_pem_private_key(block.encode("ascii"), None, _backend())
    except TypeError:
        raise CryptoError("is an encrypted private key; give an unencrypted key") from None
    except ValueError as e:
        # cryptography's message may quote key material in some versions: keep only the class of error.
        raise CryptoError(f"is not a valid unencrypted PEM private key ({type(e).__name__})") from None


def load_public_key(data: Text) -> Any:
    """The one public key in ``data`` (PEM SubjectPublicKeyInfo), or CryptoError."""
    require_cryptography()
    block = _single_block(data, PUBLIC_KEY_LABELS, "public key")
    try:
        return serialization.load_pem_public_key(block.encode("ascii"), _backend())
    except ValueError as e:
        raise CryptoError(f"is not a valid PEM public key ({e})") from None


def certificate_der(certificate: Any) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def certificate_id(data: Text) -> str:
    """The AWS IoT certificate id of a PEM certificate: lowercase hex SHA-256 of its DER bytes."""
    return hashlib.sha256(certificate_der(load_certificate(data))).hexdigest()


def is_certificate_id(value: Any) -> bool:
    return isinstance(value, str) and bool(CERTIFICATE_ID_PATTERN.fullmatch(value))


def public_key_der(obj: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate, CSR, private key or public key object."""
    if hasattr(obj, "public_key"):
        obj = obj.public_key()
    return obj.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_public_key(data: Text) -> bytes:
    return public_key_der(load_certificate(data))


def csr_public_key(data: Text) -> bytes:
    return public_key_der(load_csr(data))


def private_key_public_key(data: Text) -> bytes:
    return public_key_der(load_private_key(data))


def same_public_key(a: Any, b: Any) -> bool:
    """Whether two certificates/CSRs/keys (objects or SPKI DER bytes) carry the same public key."""
    a_der = a if isinstance(a, bytes) else public_key_der(a)
    b_der = b if isinstance(b, bytes) else public_key_der(b)
    return a_der == b_der


def read_file(path: str) -> Optional[bytes]:
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def file_differs(path: str, data: bytes) -> bool:
    return read_file(path) != data


class PendingFile:
    """A file to be replaced atomically, prepared before its content exists.

    The temporary file is created at once in the target directory with ``mode``
    (mkstemp creates it 0600, then fchmod sets the final mode, so the umask never
    widens or narrows it), proving the directory is writable. ``commit`` writes,
    syncs and renames it over ``path``; ``discard`` removes it.
    """

    def __init__(self, path: str, mode: int):
        self.path = path
        self.mode = mode
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            os.unlink(self.tmp_path)
            raise
        self._fd: Optional[int] = fd

    def commit(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError("this pending file was already committed or discarded")
        fd, self._fd = self._fd, None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(self.tmp_path, self.path)
        except BaseException:
            _unlink_quietly(self.tmp_path)
            raise
        _fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            _unlink_quietly(self.tmp_path)

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.discard()


def write_file_atomic(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` by ``data`` with permissions ``mode``, atomically."""
    with PendingFile(path, mode) as pending:
        pending.commit(data)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
