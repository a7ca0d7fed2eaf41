"""The local endpoint's device data plane: MQTT 3.1.1 over mutual TLS, authenticated and authorized as AWS IoT Core.

Started by ``server.py`` (``--mqtt-port``, 0 = a free port; ``--no-mqtt`` switches it off) in the same process
as moto, so it reads the same certificates, things and policies (under ``fidelity_core.STATE_LOCK``).
``GET /_local/dataplane`` answers where it listens, the CA file a device must trust (the stand-in for Amazon
Root CA 1) and the connection events (accepted, refused and why); ``DELETE`` forgets the events.

Authentication (developer guide, "Client authentication"): the device's certificate must be registered and
ACTIVE. A certificate unknown to the account is refused during the TLS handshake unless a registered CA signed
it; then JITR/JITP runs (``jitp.connect``, the same code as ``/_local/jitp/connect``) and the connection is
closed, as AWS does; the device reconnects. Authorization: ``policy_eval`` over the policies attached to the
certificate and to the thing groups (and their parents) of the connection's thing. README.md beside this file
lists what is and is not emulated. Nothing here imports from ``plugins/``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import fleet_provisioning
import jitp
import policy_eval
import provisioning_claims
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fidelity_core import STATE_LOCK
from moto.iot.models import IoTBackend, iot_backends

CA_FILE_NAME = "AmazonRootCA1.pem"  # what the stand-in replaces; tests hand this file to the device
# Host names the server certificate is valid for: what a device can connect to locally, and every AWS region's
# data endpoint (DescribeEndpoint answers <id>-ats.iot.<region>.amazonaws.com).
LOCAL_NAMES = ("localhost",)
MAX_EVENTS = 2000
HANDSHAKE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0

# MQTT 3.1.1 packet types (OASIS standard, section 2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
SUBACK_FAILURE = 0x80


class Refused(Exception):
    """Close the connection; the message (logged and kept as an event) says why."""


# --------------------------------------------------------------------------- certificates of the listener


def _regions() -> list[str]:
    try:
        import boto3  # moto depends on it

        return sorted(set(boto3.session.Session().get_available_regions("iot")) | {"us-east-1"})
    except Exception:  # only the host names of the server certificate depend on it
        return ["us-east-1"]


def make_root_and_server(directory: str) -> tuple[str, str, str]:
    """A local root CA (written to ``CA_FILE_NAME``) and a server certificate it signs: (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotfleet local endpoint"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Local stand-in for Amazon Root CA 1"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in LOCAL_NAMES]
    names += [x509.DNSName(f"*.iot.{region}.amazonaws.com") for region in _regions()]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.iot.us-east-1.amazonaws.com")]))
        .issuer_name(root_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=29))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    paths = tuple(os.path.join(directory, name) for name in (CA_FILE_NAME, "server.pem", "server.key"))
    with open(paths[0], "wb") as handle:
        handle.write(root.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(server.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as handle:
        handle.write(
            server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths  # type: ignore[return-value]


# --------------------------------------------------------------------------- the registry (moto's state)


def backends() -> list[IoTBackend]:
    """Every account's and region's IoT backend that exists (moto creates them on first use)."""
    found = []
    for account in list(iot_backends.values()):
        found.extend(list(account.values()))
    return found


def trusted_pems() -> list[str]:
    """Every registered device and CA certificate: the TLS trust store (statuses are checked afterwards)."""
    pems = []
    for backend in backends():
        pems.extend(cert.certificate_pem for cert in backend.certificates.values())
        pems.extend(ca.certificate_pem for ca in backend.ca_certificates.values())
    pems.extend(provisioning_claims.trusted_pems())  # CreateProvisioningClaim's temporary certificates
    return pems


@dataclass
class Principal:
    """The authenticated device: where its certificate is registered, and the certificate."""

    backend: IoTBackend
    certificate_arn: str
    certificate_id: str
    certificate: x509.Certificate

    def arn(self, suffix: str) -> str:
        partition = self.certificate_arn.split(":")[1]
        return f"arn:{partition}:iot:{self.backend.region_name}:{self.backend.account_id}:{suffix}"


def find_certificate(cert_id: str) -> tuple[IoTBackend, Any] | None:
    for backend in backends():
        registered = backend.certificates.get(cert_id)
        if registered is not None:
            return backend, registered
    return None


def connection_thing(principal: Principal, client_id: str | None) -> policy_eval.Thing | None:
    """The thing the policy variables name: attached to the certificate and named as the client id.

    AWS ("Thing policy variables"): the thing name is taken from the client id, which must match a thing
    attached to the certificate. With an exclusive attachment the certificate has one thing; we still ask
    the client id to match (our stricter reading, see README.md).
    """
    backend = principal.backend
    if client_id is None or (principal.certificate_arn, client_id) not in backend.principal_things:
        return None
    thing = next((t for t in backend.things.values() if t.thing_name == client_id), None)
    if thing is None:
        return None
    type_name = getattr(thing.thing_type, "thing_type_name", None) if thing.thing_type else None
    return policy_eval.Thing(client_id, type_name, {k: str(v) for k, v in (thing.attributes or {}).items()})


def _policy_document(policy: Any) -> Any:
    return policy.document


def policies_of(principal: Principal, thing: policy_eval.Thing | None) -> list[tuple[str, Any]]:
    """The policies attached to the certificate, and to the groups of the connection's thing and their parents."""
    backend = principal.backend
    targets = [principal.certificate_arn]
    if thing is not None:
        thing_arn = principal.arn(f"thing/{thing.name}")
        for group in backend.thing_groups.values():
            if thing_arn in group.things:
                targets.append(group.arn)
                targets.extend(parent["groupArn"] for parent in group.metadata.get("rootToParentThingGroups", []))
    found: dict[str, Any] = {}
    for (target, name), (_principal, policy) in list(backend.principal_policies.items()):
        if target in targets and name not in found:
            found[name] = _policy_document(policy)
    # A trusted-user claim certificate has no attached policy: what it may do comes with it (provisioning_claims).
    return list(found.items()) + provisioning_claims.policies_for(principal.certificate_id)


def authorize(principal: Principal, client_id: str | None, action: str, resource: str) -> policy_eval.Decision:
    with STATE_LOCK:
        thing = connection_thing(principal, client_id)
        policies = policies_of(principal, thing)
        context = policy_eval.Context(client_id, thing, principal.certificate, principal.certificate_id)
        return policy_eval.evaluate(policies, action, principal.arn(resource), context)


# --------------------------------------------------------------------------- MQTT 3.1.1 codec


def _encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _encode_length(len(body)) + body


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


class Reader:
    """Reads the fields of one packet's body."""

    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def u8(self) -> int:
        if self.at >= len(self.body):
            raise Refused("malformed packet (too short)")
        self.at += 1
        return self.body[self.at - 1]

    def u16(self) -> int:
        if self.at + 2 > len(self.body):
            raise Refused("malformed packet (too short)")
        self.at += 2
        return struct.unpack("!H", self.body[self.at - 2 : self.at])[0]

    def binary(self) -> bytes:
        length = self.u16()
        if self.at + length > len(self.body):
            raise Refused("malformed packet (a field runs past its end)")
        self.at += length
        return self.body[self.at - length : self.at]

    def string(self) -> str:
        try:
            return self.binary().decode()
        except UnicodeDecodeError as error:
            raise Refused("malformed packet (a string is not UTF-8)") from error

    def rest(self) -> bytes:
        return self.body[self.at :]

    def done(self) -> bool:
        return self.at >= len(self.body)


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, multiplier = 0, 1
    for _index in range(4):
        byte = (await reader.readexactly(1))[0]
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            break
        multiplier *= 128
    else:
        raise Refused("malformed remaining length")
    return first >> 4, first & 0x0F, await reader.readexactly(length)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 section 4.7: ``+`` one level, ``#`` the rest; ``$`` topics are not matched by a leading wildcard."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


# --------------------------------------------------------------------------- the broker


@dataclass
class Session:
    client_id: str
    principal: Principal
    writer: asyncio.StreamWriter
    subscriptions: dict[str, int] = field(default_factory=dict)
    next_id: int = 0
    will: tuple[str, bytes, int, bool] | None = None

    def packet_id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id


class Listener:
    """The MQTT listener: one asyncio loop in a daemon thread, one coroutine per connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, directory: str | None = None) -> None:
        self.host, self.requested_port = host, port
        self.directory = directory or tempfile.mkdtemp(prefix="local-iot-dataplane-")
        self.ca_file, self.cert_file, self.key_file = make_root_and_server(self.directory)
        self.port = 0
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, tuple[bytes, int]] = {}
        self.events: list[dict[str, Any]] = []
        self._events_lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._context_key = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="mqtt-listener", daemon=True)
        thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise RuntimeError(f"the MQTT listener did not start: {self._failure}") from self._failure

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start()
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        # Our own accept loop: the socket is handed to asyncio's TLS only once the trust store is built, so no
        # byte of the ClientHello is read before the handshake starts (StreamWriter.start_tls would lose them).
        self._loop = asyncio.get_running_loop()
        self._socket = socket.create_server((self.host, self.requested_port), reuse_port=False)
        self._socket.setblocking(False)
        self.port = self._socket.getsockname()[1]
        self._ready.set()
        while True:
            connection, peer = await self._loop.sock_accept(self._socket)
            task = asyncio.create_task(self._handle(connection, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "caFile": self.ca_file,
            "serverNames": [*LOCAL_NAMES, "127.0.0.1", "*.iot.<region>.amazonaws.com"],
            "protocol": "MQTT 3.1.1 over TLS 1.2+ with client certificates",
        }

    # ---------------------------------------------------------------- events

    def event(self, kind: str, **details: Any) -> None:
        entry = {"time": time.time(), "event": kind, **details}
        with self._events_lock:
            self.events.append(entry)
            del self.events[:-MAX_EVENTS]
        if kind in ("refused", "disconnected", "denied"):
            print(f"local IoT data plane: {kind} {details}", file=sys.stderr, flush=True)

    def events_snapshot(self) -> list[dict[str, Any]]:
        with self._events_lock:
            return list(self.events)

    def clear_events(self) -> None:
        with self._events_lock:
            self.events.clear()

    # ---------------------------------------------------------------- TLS

    def tls_context(self) -> ssl.SSLContext:
        """A server context trusting every registered certificate and CA (rebuilt when the registry changes)."""
        with STATE_LOCK:
            pems = trusted_pems()
        key = hashlib.sha256("".join(pems).encode()).hexdigest()
        if self._context is not None and key == self._context_key:
            return self._context
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        # A registered certificate is trusted as it is (AWS-generated and CA-less ones chain to nothing we know).
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["x-amzn-mqtt-ca"])  # AWS's ALPN for MQTT on 443; harmless elsewhere
        with open(self.ca_file) as handle:
            context.load_verify_locations(cadata=handle.read())  # never empty; no device holds its key
        for pem in pems:
            try:
                context.load_verify_locations(cadata=pem)
            except (ssl.SSLError, ValueError):
                continue  # not a certificate OpenSSL reads: no device can present it
        self._context, self._context_key = context, key
        return context

    # ---------------------------------------------------------------- connections

    async def _handle(self, connection: socket.socket, peer: Any) -> None:
        session: Session | None = None
        clean = False
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                context = await asyncio.to_thread(self.tls_context)
                reader = asyncio.StreamReader()
                protocol = asyncio.StreamReaderProtocol(reader)
                transport, _protocol = await self._loop.connect_accepted_socket(  # type: ignore[union-attr]
                    lambda: protocol, connection, ssl=context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
                )
                writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
            except (ssl.SSLError, OSError, asyncio.TimeoutError) as error:
                connection.close()
                raise Refused(
                    "TLS handshake failed: the client certificate is not registered in any account and no "
                    f"registered CA signed it, or it is expired ({getattr(error, 'reason', None) or error})"
                ) from None
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            principal = await asyncio.to_thread(self._authenticate, der)
            session = await self._connect(reader, writer, principal)
            clean = await self._serve_session(reader, session)
        except Refused as refusal:
            self.event("refused" if session is None else "disconnected", reason=str(refusal), peer=str(peer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.TimeoutError):
            pass  # the device went away
        except policy_eval.Unsupported as error:
            self.event(
                "refused" if session is None else "disconnected",
                reason=f"the policy uses what the local endpoint does not emulate: {error}",
                peer=str(peer),
            )
        except Exception as error:  # a fault of ours: close the connection and say so, never carry on silently
            self.event(
                "refused" if session is None else "disconnected",
                reason=f"local endpoint error: {type(error).__name__}: {error}",
                peer=str(peer),
            )
        finally:
            if session is not None:
                self._end_session(session, clean)
            if writer is not None:
                writer.close()

    def _authenticate(self, der: bytes | None) -> Principal:
        if not der:
            raise Refused("no client certificate")
        certificate = x509.load_der_x509_certificate(der)
        cert_id = hashlib.sha256(der).hexdigest()
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        with STATE_LOCK:
            claim = provisioning_claims.find(cert_id)
            if claim is not None:
                if claim[1].expired():
                    raise Refused(f"provisioning claim {cert_id} expired at {claim[1].expiration.isoformat()}")
                return Principal(claim[0], claim[1].certificate_arn, cert_id, certificate)
            found = find_certificate(cert_id)
            if found is not None and found[1].status == "ACTIVE":
                return Principal(found[0], found[1].arn, cert_id, certificate)
            if found is not None and found[1].status != "PENDING_ACTIVATION":
                raise Refused(f"certificate {cert_id} is {found[1].status}; only an ACTIVE certificate connects")
            # Unknown or PENDING_ACTIVATION: just-in-time registration, only through a registered CA that signed it.
            candidates = [found[0]] if found is not None else backends()
            backend = next((b for b in candidates if jitp._issuing_ca(b, certificate, []) is not None), None)
            if backend is None and found is not None:
                raise Refused(f"certificate {cert_id} is PENDING_ACTIVATION; only an ACTIVE certificate connects")
            if backend is None:
                raise Refused(f"certificate {cert_id} is not registered and no registered CA signed it")
            answer = jitp.connect(backend, pem)
        # AWS closes the first connection of an auto-registered certificate, even when JITP provisioned it.
        self.event("jit-registration", certificateId=cert_id, answer=answer.payload)
        registered = answer.payload.get("event")
        if registered and self._loop is not None:
            # JITR: AWS publishes the registration on $aws/events/certificates/registered/<caCertificateId>, for
            # whoever subscribed and may receive it (a function that activates the certificate, say).
            message = json.dumps(registered["message"]).encode()
            self._loop.call_soon_threadsafe(self._route, registered["topic"], message, 1, False)
        outcome = answer.payload.get("reason") or "registered and provisioned"
        raise Refused(
            f"certificate {cert_id}, signed by a registered CA, auto-registration: {outcome}; the connection is "
            "closed as AWS closes it, the device reconnects"
        )

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, principal: Principal
    ) -> Session:
        kind, _flags, body = await asyncio.wait_for(read_packet(reader), CONNECT_TIMEOUT)
        if kind != CONNECT:
            raise Refused(f"the first packet must be CONNECT, not type {kind}")
        fields = Reader(body)
        protocol, level = fields.string(), fields.u8()
        if protocol != "MQTT" or level != 4:
            writer.write(packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            raise Refused(f"only MQTT 3.1.1 is emulated (protocol {protocol!r} level {level})")
        flags = fields.u8()
        fields.u16()  # keep alive: not enforced (see README.md)
        client_id = fields.string()
        will = None
        if flags & 0x04:
            will_topic, will_payload = fields.string(), fields.binary()
            will = (will_topic, will_payload, (flags >> 3) & 0x03, bool(flags & 0x20))
        if not client_id:
            writer.write(packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
            raise Refused("an empty client id is refused (our reading: AWS policies name the client id)")
        decision = await asyncio.to_thread(authorize, principal, client_id, "iot:Connect", f"client/{client_id}")
        if not decision.allowed:
            # AWS closes the connection without a CONNACK when iot:Connect is denied.
            raise Refused(
                f"iot:Connect on client/{client_id} {decision.answer} (certificate {principal.certificate_id})"
            )
        if will is not None:
            will_decision = authorize(principal, client_id, "iot:Publish", f"topic/{will[0]}")
            if not will_decision.allowed:
                raise Refused(f"iot:Publish on the last-will topic {will[0]} {will_decision.answer}")
        previous = self.sessions.get(client_id)
        if previous is not None:
            # AWS: a second connection with the same client id disconnects the first.
            self.event("disconnected", clientId=client_id, reason="another connection used the same client id")
            previous.will = None
            previous.writer.close()
        session = Session(client_id, principal, writer, will=will)
        self.sessions[client_id] = session
        writer.write(packet(CONNACK, 0, b"\x00\x00"))
        self.event("connected", clientId=client_id, certificateId=principal.certificate_id)
        return session

    def _end_session(self, session: Session, clean: bool) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        if not clean and session.will is not None:
            topic, payload, qos, retain = session.will
            self._route(topic, payload, qos, retain)

    async def _serve_session(self, reader: asyncio.StreamReader, session: Session) -> bool:
        """Serve packets until DISCONNECT (True) or a refusal (Refused raised)."""
        writer = session.writer
        while True:
            kind, flags, body = await read_packet(reader)
            if kind == PUBLISH:
                self._publish(session, flags, body)
            elif kind == SUBSCRIBE:
                self._subscribe(session, body)
            elif kind == UNSUBSCRIBE:
                fields = Reader(body)
                packet_id = fields.u16()
                while not fields.done():
                    session.subscriptions.pop(fields.string(), None)
                writer.write(packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
            elif kind == PINGREQ:
                writer.write(packet(PINGRESP, 0, b""))
            elif kind == PUBACK:
                continue  # our deliveries are at most once more: nothing is resent
            elif kind == DISCONNECT:
                session.will = None
                return True
            else:
                raise Refused(f"MQTT packet type {kind} is not supported (AWS IoT has no QoS 2)")
            await writer.drain()

    def _publish(self, session: Session, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
        fields = Reader(body)
        topic = fields.string()
        packet_id = fields.u16() if qos else None
        payload = fields.rest()
        if qos > 1:
            raise Refused(f"PUBLISH with QoS {qos} on {topic}: AWS IoT supports QoS 0 and 1 only")
        if not topic or "+" in topic or "#" in topic:
            raise Refused(f"PUBLISH to an invalid topic name {topic!r}")
        actions = ["iot:Publish", "iot:RetainPublish"] if retain else ["iot:Publish"]
        for action in actions:
            decision = authorize(session.principal, session.client_id, action, f"topic/{topic}")
            if not decision.allowed:
                # AWS on MQTT 3.1.1: an unauthorized publish disconnects the client (no PUBACK exists to refuse it).
                raise Refused(f"{action} on topic/{topic} {decision.answer} for client {session.client_id}")
        if packet_id is not None:
            session.writer.write(packet(PUBACK, 0, struct.pack("!H", packet_id)))
        self.event("published", clientId=session.client_id, topic=topic)
        if fleet_provisioning.is_request(topic):
            self._fleet_provisioning(session, topic, payload)
            return
        self._route(topic, payload, qos, retain)

    def _fleet_provisioning(self, session: Session, topic: str, payload: bytes) -> None:
        """A request on a reserved topic: answered to the requesting connection only, as AWS does."""

        def respond(answer_topic: str, answer: bytes) -> None:
            granted = [q for f, q in session.subscriptions.items() if topic_matches(f, answer_topic)]
            if granted:
                self._deliver(session, answer_topic, answer, max(granted), False)
            else:
                self.event("undelivered", clientId=session.client_id, topic=answer_topic, reason="not subscribed")

        try:
            caller = {"certificateId": session.principal.certificate_id, "clientId": session.client_id}
            outcome = fleet_provisioning.handle(session.principal.backend, topic, payload, respond, caller)
        except fleet_provisioning.NotEmulated as error:
            raise Refused(str(error)) from None
        self.event("fleet-provisioning", clientId=session.client_id, topic=topic, outcome=outcome)

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self.retained[topic] = (payload, qos)
            else:
                self.retained.pop(topic, None)  # MQTT: an empty retained message clears the topic
        for session in list(self.sessions.values()):
            granted = [q for f, q in session.subscriptions.items() if topic_matches(f, topic)]
            if granted:
                self._deliver(session, topic, payload, min(qos, max(granted)), False)

    def _deliver(self, session: Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            decision = authorize(session.principal, session.client_id, "iot:Receive", f"topic/{topic}")
        except policy_eval.Unsupported as error:
            self.event("denied", clientId=session.client_id, topic=topic, reason=str(error))
            return
        if not decision.allowed:
            # AWS drops the message for this subscriber; the connection stays.
            self.event("denied", clientId=session.client_id, action="iot:Receive", topic=topic)
            return
        body = _string(topic) + (struct.pack("!H", session.packet_id()) if qos else b"") + payload
        session.writer.write(packet(PUBLISH, qos << 1 | int(retain), body))
        self.event("delivered", clientId=session.client_id, topic=topic)

    def _subscribe(self, session: Session, body: bytes) -> None:
        fields = Reader(body)
        packet_id = fields.u16()
        codes = bytearray()
        accepted = []
        while not fields.done():
            topic_filter, qos = fields.string(), fields.u8() & 0x03
            if not valid_filter(topic_filter):
                codes.append(SUBACK_FAILURE)
                continue
            decision = authorize(session.principal, session.client_id, "iot:Subscribe", f"topicfilter/{topic_filter}")
            if not decision.allowed:
                # AWS on MQTT 3.1.1: SUBACK with the failure code 0x80 for that filter; the connection stays.
                self.event("denied", clientId=session.client_id, action="iot:Subscribe", topicFilter=topic_filter)
                codes.append(SUBACK_FAILURE)
                continue
            granted = min(qos, 1)  # AWS IoT grants QoS 1 at most
            session.subscriptions[topic_filter] = granted
            codes.append(granted)
            accepted.append(topic_filter)
        session.writer.write(packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(codes)))
        for topic_filter in accepted:
            for topic, (payload, qos) in list(self.retained.items()):
                if topic_matches(topic_filter, topic):
                    self._deliver(session, topic, payload, min(qos, session.subscriptions[topic_filter]), True)


# --------------------------------------------------------------------------- server.py glue

LISTENER: Listener | None = None


def add_argument_group(parser: Any) -> None:
    group = parser.add_argument_group("data plane", "MQTT over mutual TLS, as AWS IoT Core's device endpoint")
    group.add_argument(
        "--mqtt-port",
        type=int,
        default=int(os.environ.get("LOCAL_IOT_MQTT_PORT", "0")),
        metavar="PORT",
        help="port of the MQTT/TLS listener on the same host; 0 picks a free one (GET /_local/dataplane says "
        "which) (default: %(default)s)",
    )
    group.add_argument("--no-mqtt", action="store_true", help="do not start the MQTT listener")


def start(args: Any) -> Listener | None:
    global LISTENER
    if getattr(args, "no_mqtt", False):
        return None
    LISTENER = Listener(args.host, args.mqtt_port)
    LISTENER.start()
    return LISTENER


def dataplane_route(method: str) -> tuple[str, Any]:
    """``GET /_local/dataplane``: host, port, CA file and events; ``DELETE`` forgets the events."""
    if LISTENER is None:
        return "404 Not Found", {"error": "the MQTT listener is not running (started with --no-mqtt)"}
    if method == "DELETE":
        LISTENER.clear_events()
        return "200 OK", {**LISTENER.info(), "events": []}
    if method != "GET":
        return "405 Method Not Allowed", {"error": "GET or DELETE"}
    return "200 OK", {**LISTENER.info(), "events": LISTENER.events_snapshot()}


CONTROL_ROUTES: dict[str, Callable[..., tuple[str, Any]]] = {
    "/_local/dataplane": dataplane_route,
    **fleet_provisioning.CONTROL_ROUTES,  # /_local/provisioning-hooks
}
