# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT provisioning templates: parse, validate, render and plan.

The rules here follow the AWS IoT developer guide ("Provisioning templates",
"Just-in-time provisioning", "Fleet provisioning", "Single thing provisioning")
and the limits of botocore's IoT service model. Everything is pure Python except
``read_current_state``, which reads the account with a boto3 IoT client.

Flow: ``parse(body)`` -> ``ProvisioningTemplate`` (structure, sections, functions,
references checked) -> ``render(template, parameters)`` -> a plain ``rendered``
dict (thing, certificate, policies, device_configuration) -> ``plan(rendered,
current)`` -> a list of actions, where ``current`` is the snapshot that
``read_current_state`` returns (or a test builds by hand).

Decisions where the documentation is silent (each is a named constant or a
comment in its stage): a property without an OverrideSettings entry is treated as
DO_NOTHING on an existing resource; a template provisions at most one thing and
one certificate; only ``String`` parameters exist; a declared parameter without
a value or Default is an error.

The package, by stage: ``limits`` (AWS limits, vocabulary, ``TemplateError``, ``ProvisioningTemplate``),
``expressions`` (loading a body, static checks of functions and literal values), ``parse``, ``render``
(also certificate ids and public-key fingerprints), ``plan`` and ``account`` (the reads, through
``iot_access``). The package is the engine's interface: parse, render, plan and the names callers use with them
(the registration modules, the provisioning_template and ca_certificate modules, the tests); anything else is
imported from its stage module.
"""

from __future__ import annotations

try:
    from ansible.module_utils.common.yaml import HAS_YAML, yaml_load
except ImportError:  # pragma: no cover - very old ansible-core
    HAS_YAML = False
    yaml_load = None

from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.account import (
    read_current_state,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.limits import (
    ProvisioningTemplate,
    TemplateError,
    template_body_json,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.parse import (
    parse,
    validate_for,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.plan import (
    empty_snapshot,
    normalise_policy_document,
    plan,
    plan_failures,
    plan_is_empty,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.template_engine.render import (
    certificate_id_from_pem,
    public_key_fingerprint,
    render,
)

__all__ = [
    "HAS_YAML",
    "ProvisioningTemplate",
    "TemplateError",
    "certificate_id_from_pem",
    "empty_snapshot",
    "normalise_policy_document",
    "parse",
    "plan",
    "plan_failures",
    "plan_is_empty",
    "public_key_fingerprint",
    "read_current_state",
    "render",
    "template_body_json",
    "validate_for",
    "yaml_load",
]
