"""A large registry for benchmarks: seeding through a control path, and lookups that stay fast with 100,000 things.

Two additions for the fleet benchmark (benchmarks/run.py), in force only in the server this file starts
(``python tests/local_iot/large_registry.py [server.py options]``); tests and the demo use server.py without them:

* ``POST /_local/seed`` fills a registry in seconds instead of one HTTP call per resource. The body::

      {"prefix": "bench-", "start": 0, "count": 100000, "width": 5, "thing_group": "bench-fleet",
       "attributes": {"model": "bench"}, "certificates": true, "policy": "bench-policy"}

  makes things ``bench-00000`` .. ``bench-99999`` with those attributes, each a member of ``thing_group`` (which
  must exist) and, with ``certificates``, with its own ACTIVE certificate (signed by this endpoint's CSR issuer,
  as CreateCertificateFromCsr would sign it) attached to it and carrying ``policy`` (which must exist). Optional
  ``account`` and ``region`` (default moto's account, us-east-1). Nothing is made when a name is taken or a
  group or policy is missing (400 with the reason). Answer: ``{"things": N, "certificates": N, "seconds": S}``.
  The state is the one the AWS calls would leave, written straight into moto's backend.

* Lookups from indexes, for those moto does by scanning everything:
  DescribeThing and every call naming a thing (moto scans all things for the name), a certificate ARN (moto
  scans all certificates) and ListThingPrincipals (moto scans all thing-principal pairs). With 100,000 things a
  scan costs milliseconds per call, so a 100,000-device plan would take the endpoint hours. The answers are the
  same as moto's (test_large_registry.py compares them); on any miss the original scan answers.

Nothing here imports from the collection's ``plugins/``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import fidelity_paging
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fidelity_core import STATE_LOCK, _wrap
from fidelity_security import sign_csr
from moto import backends as moto_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core import responses as moto_responses
from moto.iot.models import FakeCertificate, FakeThing, IoTBackend, iot_backends
from moto.iot.responses import IoTResponse

MAX_SEED = 200000


class SeedError(ValueError):
    """A seed request that cannot be carried out; nothing was made."""


def _names(body: dict[str, Any]) -> list[str]:
    prefix, start, count, width = body.get("prefix"), body.get("start", 0), body.get("count"), body.get("width", 5)
    if not isinstance(prefix, str) or not prefix:
        raise SeedError("prefix: must be a non-empty string")
    for field, value in (("start", start), ("count", count), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SeedError(f"{field}: must be an integer >= 0, got {value!r}")
    if not 0 < count <= MAX_SEED:
        raise SeedError(f"count: must be 1..{MAX_SEED}, got {count}")
    return [f"{prefix}{index:0{width}d}" for index in range(start, start + count)]


def _certificate_pems(count: int) -> list[str]:
    """``count`` distinct certificates (serial numbers differ) on one EC key, as the CSR issuer signs them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "seeded device")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return [sign_csr(csr) for _index in range(count)]


def seed(backend: IoTBackend, body: dict[str, Any]) -> dict[str, Any]:
    """Make the things (and certificates) ``body`` asks for in ``backend``; SeedError and nothing made if it cannot."""
    started = time.monotonic()
    names = _names(body)
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise SeedError("attributes: must be an object of strings")
    group_name = body.get("thing_group")
    groups = [g for g in backend.thing_groups.values() if g.thing_group_name == group_name] if group_name else []
    if group_name and not groups:
        raise SeedError(f"thing_group: {group_name!r} does not exist (create it first)")
    certificates = bool(body.get("certificates"))
    policy = None
    if body.get("policy"):
        if not certificates:
            raise SeedError("policy: needs certificates true (a policy is attached to a certificate)")
        policy = backend.policies.get(body["policy"])
        if policy is None:
            raise SeedError(f"policy: {body['policy']!r} does not exist (create it first)")
    with STATE_LOCK:  # the lock every IoT call of the endpoint holds while it reads or changes moto's state
        taken = [name for name in names if _thing_arn(backend, name) in backend.things]
        if taken:
            raise SeedError(f"{len(taken)} thing name(s) already exist, e.g. {taken[0]!r}")
        pems = _certificate_pems(len(names)) if certificates else []
        for index, name in enumerate(names):
            thing = FakeThing(name, None, dict(attributes), backend.account_id, backend.region_name)
            backend.things[thing.arn] = thing
            if groups:
                groups[0].things[thing.arn] = thing
            if certificates:
                cert = FakeCertificate(pems[index], "ACTIVE", backend.account_id, backend.region_name)
                backend.certificates[cert.certificate_id] = cert
                backend.principal_things[(cert.arn, name)] = (cert, thing)
                if policy is not None:
                    backend.principal_policies[(cert.arn, policy.name)] = (cert, policy)
    next_generation()
    return {"things": len(names), "certificates": len(pems), "seconds": round(time.monotonic() - started, 2)}


def _thing_arn(backend: IoTBackend, name: str) -> str:
    # moto's FakeThing ARN; the partition is "aws" for every region the benchmark uses.
    return f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{name}"


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def seed_route(method: str, environ: dict[str, Any]) -> tuple[str, Any]:
    """``POST /_local/seed``: see the module docstring."""
    if method != "POST":
        return "405 Method Not Allowed", {"error": "POST a JSON object (see large_registry.py)"}
    try:
        body = json.loads(_read_body(environ) or b"{}")
        if not isinstance(body, dict):
            raise SeedError("the body must be a JSON object")
        backend = iot_backends[str(body.get("account") or DEFAULT_ACCOUNT_ID)][str(body.get("region") or "us-east-1")]
        return "200 OK", seed(backend, body)
    except ValueError as error:  # SeedError or bad JSON
        return "400 Bad Request", {"error": str(error)}


seed_route.takes_environ = True  # type: ignore[attr-defined]

CONTROL_ROUTES: dict[str, Callable[[str, dict[str, Any]], tuple[str, Any]]] = {"/_local/seed": seed_route}


# --------------------------------------------------------------------------- indexed lookups


class PairIndex(dict):
    """moto's principal_things ({(principal ARN, thing name): ...}) that also knows each thing's principals.

    ``by_thing[name]`` holds the thing's principals in the order they were attached, as a scan of the pairs
    would find them.
    """

    def __init__(self, pairs: Any = ()) -> None:
        super().__init__()
        self.by_thing: dict[str, dict[str, None]] = {}
        self.update(pairs)

    def _remember(self, key: tuple[str, str]) -> None:
        self.by_thing.setdefault(key[1], {})[key[0]] = None

    def _forget(self, key: tuple[str, str]) -> None:
        principals = self.by_thing.get(key[1])
        if principals is not None:
            principals.pop(key[0], None)
            if not principals:
                del self.by_thing[key[1]]

    def __setitem__(self, key: tuple[str, str], value: Any) -> None:
        if key not in self:
            self._remember(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: tuple[str, str], *default: Any) -> Any:
        if key in self:
            value = super().pop(key)
            self._forget(key)
            return value
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self._forget(key)
        return key, value

    def setdefault(self, key: tuple[str, str], default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        super().clear()
        self.by_thing.clear()

    def principals_of(self, thing_name: str) -> list[str]:
        return list(self.by_thing.get(thing_name, ()))


def _pairs(backend: IoTBackend) -> PairIndex:
    if not isinstance(backend.principal_things, PairIndex):
        backend.principal_things = PairIndex(backend.principal_things)
    return backend.principal_things


_INSTALLED = False


def install_indexes() -> None:
    """Answer moto's scanning lookups from indexes (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return

    @_wrap(IoTBackend, "describe_thing")
    def describe_thing(original: Callable[..., Any], self: IoTBackend, thing_name: str) -> Any:
        thing = self.things.get(_thing_arn(self, thing_name))
        if thing is not None and thing.thing_name == thing_name:
            return thing
        return original(self, thing_name)

    @_wrap(IoTBackend, "_get_principal")
    def get_principal(original: Callable[..., Any], self: IoTBackend, principal_arn: str) -> Any:
        if ":cert/" in principal_arn:
            cert = self.certificates.get(principal_arn.rsplit(":cert/", 1)[1])
            if cert is not None and cert.arn == principal_arn:
                return cert
        return original(self, principal_arn)

    @_wrap(IoTBackend, "list_thing_principals")
    def list_thing_principals(original: Callable[..., Any], self: IoTBackend, thing_name: str) -> Any:
        thing = self.things.get(_thing_arn(self, thing_name))
        if thing is None or thing.thing_name != thing_name:
            return original(self, thing_name)  # its answer for a missing thing
        return _pairs(self).principals_of(thing_name)

    _INSTALLED = True


def install_request_caches() -> None:
    """Remember, per request or per process, what moto's request path recomputes (the answers do not change).

    Measured (cProfile, one ListThingPrincipals): about half of the endpoint's time per call went to listing
    moto's package directory to recognise a host (twice per call), matching the URL against the IoT routes
    (seven times per call) and listing the response class's methods by introspection (once per call).
    """
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules  # the installed moto does not change while serving

    names: dict[tuple[type, int], list[str]] = {}
    original_names = moto_responses.method_names_from_class

    def method_names_from_class(clazz: Any) -> list[str]:
        key = (clazz, len(vars(clazz)))  # a method added later changes the key
        if key not in names:
            names[key] = original_names(clazz)
        return names[key]

    moto_responses.method_names_from_class = method_names_from_class

    @_wrap(IoTResponse, "_get_action")
    def get_action(original: Callable[..., Any], self: IoTResponse) -> Any:
        # One response object serves one request: its operation is found once.
        if "_bench_action" not in self.__dict__:
            self.__dict__["_bench_action"] = original(self)
        return self.__dict__["_bench_action"]


# Every change to moto's state moves the generation on; a cached list is good for one generation of one backend.
_GENERATION = [0]
READ_PREFIXES = ("List", "Describe", "Get")
# Responses whose whole list is cached (the paging fix answers one page of it each call), with the request
# parameters that choose the list.
CACHED_LISTS = {
    "list_things": ("attributeName", "attributeValue", "thingTypeName", "usePrefixAttributeValue"),
    "list_certificates": (),
    "list_things_in_thing_group": ("thingGroupName", "recursive"),
    "list_targets_for_policy": ("policyName",),
}


def next_generation() -> None:
    _GENERATION[0] += 1


def install_list_caches() -> None:
    """Build a whole list once while nothing changes, instead of once per page (moto builds it for every page).

    With 100,000 things each page of ListThings or ListCertificates cost moto about a second (it converts every
    item, then the paging fix finds the token's place among them all), so reading 400 pages took minutes. The
    list is cached per backend, operation and choosing parameters until any IoT call that is not a read (or a
    seed) moves the generation on. Only for the benchmark's server: the data plane and the thing registration
    tasks, which change state outside IoT calls, are not used there.
    """

    @_wrap(IoTResponse, "call_action")
    def call_action(original: Callable[..., Any], self: IoTResponse) -> Any:
        operation = self._get_action() or ""
        if operation.startswith(READ_PREFIXES):
            return original(self)
        next_generation()
        try:
            return original(self)
        finally:
            next_generation()

    cache: dict[tuple[Any, ...], Any] = {}
    for method, parameters in CACHED_LISTS.items():

        def cached(
            original: Callable[..., Any], self: IoTResponse, *, _method: str = method, _keys: tuple = parameters
        ) -> Any:
            backend = self.iot_backend
            key = (_method, id(backend), id(backend.things), _GENERATION[0], *(self._get_param(k) for k in _keys))
            if key not in cache:
                if len(cache) > 64:
                    cache.clear()
                cache[key] = original(self)
            return cache[key]

        _wrap(IoTResponse, method)(cached)

    positions: dict[int, tuple[list[Any], dict[str, int]]] = {}
    original_page = fidelity_paging.page

    def page(items: list[Any], limit: int, token: str | None) -> tuple[list[Any], str | None]:
        """fidelity_paging.page, finding the token's item in a cached list by a map instead of a scan."""
        if not token:
            return original_page(items, limit, token)
        offset, last = fidelity_paging.decode_token(token)
        known = positions.get(id(items))
        if known is None or known[0] is not items:
            if len(positions) > 64:
                positions.clear()
            first: dict[str, int] = {}
            for index, item in enumerate(items):
                first.setdefault(fidelity_paging._identity(item), index)  # pylint: disable=protected-access
            known = positions[id(items)] = (items, first)
        start = known[1][last] + 1 if last in known[1] else min(offset, len(items))
        chunk = items[start : start + limit]
        end = start + len(chunk)
        more = chunk and end < len(items)
        return chunk, fidelity_paging.encode_token(end, fidelity_paging._identity(chunk[-1])) if more else None  # pylint: disable=protected-access

    fidelity_paging.page = page


def main(argv: list[str] | None = None) -> None:
    """server.py with the seed control path and the indexes: ``python large_registry.py [server.py options]``."""
    import server  # pylint: disable=import-outside-toplevel  # only this entry point starts a server

    install_indexes()
    install_request_caches()
    install_list_caches()
    server.CONTROL_ROUTES.update(CONTROL_ROUTES)
    server.main(argv)


if __name__ == "__main__":
    main()
