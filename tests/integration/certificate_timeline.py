"""Replays the endpoint's recorded effects (``GET /_local/calls`` -> ``effects``: each call that may change state,
in the order the state changed, with its time, parameters and status) to check that a thing never had no ACTIVE
certificate attached. Used by the fleet rotation test and the rotation benchmark; reads nothing of plugins/.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Set


def initial_state(iot: Any, things: Iterable[str]) -> Dict[str, Any]:
    """The certificates attached to ``things`` and every certificate's status, read with a plain boto3 client."""
    status = {}
    for page in iot.get_paginator("list_certificates").paginate(pageSize=250):
        for certificate in page["certificates"]:
            status[certificate["certificateId"]] = certificate["status"]
    attached = {}
    for thing in things:
        principals = [
            p
            for page in iot.get_paginator("list_thing_principals").paginate(thingName=thing)
            for p in page["principals"]
        ]
        attached[thing] = {p.rsplit("/", 1)[1] for p in principals if ":cert/" in p}
    return {"status": status, "attached": attached}


def _certificate_of_path(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


def replay(state: Dict[str, Any], effects: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Apply ``effects`` to ``state``; after each, every thing that has had an ACTIVE certificate attached (at the
    start or since) must still have one. Returns the violations (thing, operation, time), the least ACTIVE count
    seen per watched thing, and each watched thing's ACTIVE certificates at the end."""
    status: Dict[str, str] = dict(state["status"])
    attached: Dict[str, Set[str]] = {thing: set(ids) for thing, ids in state["attached"].items()}
    watched = [t for t, ids in attached.items() if any(status.get(i) == "ACTIVE" for i in ids)]
    least = {t: sum(status.get(i) == "ACTIVE" for i in attached[t]) for t in watched}
    violations = []
    applied = 0
    for effect in effects:
        if effect.get("status", 200) >= 300:
            continue  # refused: nothing changed
        operation, path = effect["operation"], effect.get("path", "")
        principal = effect.get("principal", "")
        if operation in ("CreateKeysAndCertificate", "CreateCertificateFromCsr"):
            new = effect.get("answer", {}).get("certificateId")
            if new:
                status[new] = "ACTIVE" if effect.get("query", {}).get("setAsActive") == "true" else "INACTIVE"
        elif operation == "UpdateCertificate":
            status[_certificate_of_path(path)] = effect.get("query", {}).get("newStatus", "")
        elif operation == "DeleteCertificate":
            gone = _certificate_of_path(path)
            status.pop(gone, None)
            for ids in attached.values():
                ids.discard(gone)
        elif operation in ("AttachThingPrincipal", "DetachThingPrincipal") and ":cert/" in principal:
            thing = path.split("/")[2]
            ids = attached.setdefault(thing, set())
            (ids.add if operation == "AttachThingPrincipal" else ids.discard)(principal.rsplit("/", 1)[1])
        else:
            continue
        applied += 1
        for thing, ids in attached.items():
            if thing not in least and any(status.get(i) == "ACTIVE" for i in ids):
                watched.append(thing)  # from now on it must keep one
                least[thing] = sum(status.get(i) == "ACTIVE" for i in ids)
        for thing in watched:
            active = sum(status.get(i) == "ACTIVE" for i in attached[thing])
            least[thing] = min(least[thing], active)
            if active == 0:
                violations.append({"thing": thing, "operation": operation, "time": effect.get("time")})
    return {
        "things": len(watched),
        "effects_applied": applied,
        "least_active": min(least.values()) if least else None,
        "violations": violations,
        "final_active": {t: sorted(i for i in attached[t] if status.get(i) == "ACTIVE") for t in watched},
    }
