# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: things
short_description: AWS IoT things as inventory hosts
version_added: 0.1.0
description:
  - Reads the AWS IoT registry and makes each thing a host, with its attributes, thing type, thing groups
    (static and dynamic), billing group and, when asked, certificates and their status as host variables.
  - Groups come from thing groups (mirroring the thing group hierarchy), thing types and billing groups; the
    constructed features (O(compose), O(keyed_groups), O(groups), O(strict)) add more.
  - Things can be filtered by thing group (with child groups), thing type, attributes and a fleet indexing query.
  - Reads are paged at the largest page each API serves (250; 100 for SearchIndex), since AWS's list quotas are
    low (ListThings 10 calls per second). Memberships are read per group, not per thing. Throttled calls are
    retried by botocore's adaptive mode, which also slows down.
  - The inventory file name must end in C(iot_things.yml) or C(iot_things.yaml).
  - Host variables are prefixed C(iot_) so they do not collide with yours. V(iot_thing_name), V(iot_thing_arn),
    V(iot_thing_type) (null without a type), V(iot_attributes) (dict), V(iot_version), V(iot_thing_groups)
    (static groups the thing is directly in), V(iot_dynamic_thing_groups), V(iot_billing_group) (null when
    none, unset with O(billing_groups=false)) and, with O(certificates=true), V(iot_certificates), a list of
    dicts with C(certificate_id), C(certificate_arn) and C(status).
options:
  plugin:
    description: Marks the file as this plugin's configuration.
    type: str
    required: true
    choices: [iotfleet.provisioning.things]
  region:
    description:
      - The AWS region to read.
      - When unset, the first of E(AWS_REGION), E(AWS_DEFAULT_REGION) and E(EC2_REGION) that is set, else the
        region of the AWS profile (as for the modules).
    type: str
    aliases: [aws_region, ec2_region]
    env:
      - name: EC2_REGION
      - name: AWS_DEFAULT_REGION
      - name: AWS_REGION
  access_key:
    description:
      - AWS access key ID. When unset, boto3's own credential resolution applies (environment, profile, role).
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description:
      - AWS secret access key. See O(access_key).
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description:
      - AWS STS session token for temporary credentials.
    type: str
    aliases: [aws_session_token, security_token, aws_security_token]
  profile:
    description:
      - A named profile from the AWS shared config and credentials files.
    type: str
    aliases: [aws_profile]
  endpoint_url:
    description:
      - Use this URL instead of the AWS endpoint, for example a local AWS IoT endpoint used for testing.
      - When unset, boto3 reads E(AWS_ENDPOINT_URL) itself.
    type: str
    aliases: [aws_endpoint_url, ec2_url]
  validate_certs:
    description:
      - When V(false), TLS certificates of the endpoint are not validated.
    type: bool
    default: true
  aws_ca_bundle:
    description:
      - A CA bundle to validate the endpoint's TLS certificate with.
    type: path
  aws_config:
    description:
      - Extra botocore client configuration, as the keyword arguments of C(botocore.config.Config).
    type: dict
  max_attempts:
    description:
      - How many times a call is attempted in total when AWS throttles or fails transiently.
    type: int
    default: 10
  thing_groups:
    description:
      - Only things in one of these thing groups (static or dynamic). The groups must exist.
    type: list
    elements: str
    default: []
  recursive:
    description:
      - With O(thing_groups), also things in the child groups of those groups, at any depth.
    type: bool
    default: true
  thing_types:
    description:
      - Only things of one of these thing types.
    type: list
    elements: str
    default: []
  attributes:
    description:
      - Only things with all of these attribute values.
    type: dict
    default: {}
  query:
    description:
      - Only things this fleet indexing query matches (SearchIndex on C(AWS_Things)), for example
        V(thingTypeName:gateway AND attributes.site:lyon).
      - Needs fleet indexing; when it is off the inventory fails and names M(iotfleet.provisioning.fleet_indexing).
    type: str
  billing_groups:
    description:
      - Read billing groups (ListBillingGroups, then ListThingsInBillingGroup per group) into V(iot_billing_group).
    type: bool
    default: true
  certificates:
    description:
      - Read each thing's certificates and their status into V(iot_certificates).
      - This costs one ListThingPrincipals call per thing (AWS's default quota is 20 per second) plus ListCertificates
        pages; use it with O(cache) on large fleets.
    type: bool
    default: false
  certificate_concurrency:
    description:
      - How many ListThingPrincipals calls run at once with O(certificates=true) (1 to 20).
    type: int
    default: 4
  group_by:
    description:
      - Which inventory groups to make. V(thing_groups) makes C(thing_group_NAME) for every thing group, with the
        static hierarchy as group children; V(thing_type) makes C(thing_type_NAME); V(billing_group) makes
        C(billing_group_NAME). Names are sanitized as Ansible sanitizes group names.
    type: list
    elements: str
    choices: [thing_groups, thing_type, billing_group]
    default: [thing_groups, thing_type]
extends_documentation_fragment:
  - constructed
  - inventory_cache
notes:
  - "IAM permissions: C(iot:ListThings), C(iot:ListThingGroups), C(iot:DescribeThingGroup),
    C(iot:ListThingsInThingGroup); with O(billing_groups) C(iot:ListBillingGroups), C(iot:ListThingsInBillingGroup);
    with O(query) C(iot:GetIndexingConfiguration), C(iot:SearchIndex); with O(certificates) C(iot:ListCertificates),
    C(iot:ListThingPrincipals)."
seealso:
  - module: iotfleet.provisioning.fleet_indexing
  - module: iotfleet.provisioning.thing_info
author:
  - iotfleet.provisioning developers (@iotfleet)
"""

EXAMPLES = r"""
# devices.iot_things.yml: every gateway on the Lyon site, reached by its attribute 'ip'
plugin: iotfleet.provisioning.things
region: eu-west-1
thing_types: [gateway]
attributes:
  site: lyon
compose:
  ansible_host: iot_attributes.ip
keyed_groups:
  - key: iot_attributes.firmware | default('unknown')
    prefix: firmware

---
# fleet.iot_things.yml: a fleet indexing query, with certificates, cached for an hour
plugin: iotfleet.provisioning.things
query: "thingGroupNames:production AND attributes.os:linux"
certificates: true
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/iot_things
cache_timeout: 3600
groups:
  revoked: iot_certificates | selectattr('status', 'equalto', 'REVOKED') | list | length > 0
"""

from typing import Any

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.iotfleet.provisioning.plugins.module_utils.aws import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    MISSING_REGION_MESSAGE,
    BotoCoreError,
    ClientError,
    make_client,
)
from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import AwsCallError, ValidationError
from ansible_collections.iotfleet.provisioning.plugins.module_utils.inventory_things import (
    read_registry,
    validate_filters,
)

GROUP_PREFIXES = {"thing_groups": "thing_group_", "thing_type": "thing_type_", "billing_group": "billing_group_"}
CONNECTION_OPTIONS = (
    "region",
    "access_key",
    "secret_key",
    "session_token",
    "profile",
    "endpoint_url",
    "validate_certs",
    "aws_ca_bundle",
    "aws_config",
    "max_attempts",
)
FILTER_OPTIONS = (
    "thing_groups",
    "recursive",
    "thing_types",
    "attributes",
    "query",
    "billing_groups",
    "certificates",
    "certificate_concurrency",
)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "iotfleet.provisioning.things"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("iot_things.yml", "iot_things.yaml"))

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        if not HAS_BOTO3:
            raise AnsibleError(
                f"the iotfleet.provisioning.things inventory needs boto3 and botocore: {BOTO3_IMPORT_ERROR}"
            )
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        data = None
        needs_update = bool(use_cache) and not cache
        if use_cache and cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                needs_update = True
        if data is None:
            data = self._read()
        if needs_update:
            self._cache[cache_key] = data
        self._populate(data)

    def _read(self) -> dict[str, Any]:
        try:
            filters = validate_filters({name: self.get_option(name) for name in FILTER_OPTIONS})
            connection = {name: self.get_option(name) for name in CONNECTION_OPTIONS}
            client = make_client("iot", **connection)
            return read_registry(client, filters)
        except ValidationError as error:
            raise AnsibleParserError(f"iotfleet.provisioning.things: {error}") from error
        except ClientError as error:
            raise AnsibleError(f"iotfleet.provisioning.things: {AwsCallError.from_client_error(error)}") from error
        except BotoCoreError as error:
            if type(error).__name__ == "NoRegionError":
                raise AnsibleError(f"iotfleet.provisioning.things: {MISSING_REGION_MESSAGE}") from error
            raise AnsibleError(
                f"iotfleet.provisioning.things: AWS call failed before a response arrived: {error}. Check "
                "endpoint_url, network access, credentials and TLS settings (validate_certs, aws_ca_bundle)."
            ) from error

    def _group(self, kind: str, name: str) -> str:
        return self.inventory.add_group(self._sanitize_group_name(GROUP_PREFIXES[kind] + name))

    def _populate(self, data: dict[str, Any]) -> None:
        group_by = set(self.get_option("group_by") or [])
        if "thing_groups" in group_by:
            hierarchy = data.get("thing_groups") or {}
            for name in hierarchy:
                self._group("thing_groups", name)
            for name, group in hierarchy.items():
                if group.get("parent") and group["parent"] in hierarchy:
                    self.inventory.add_child(
                        self._group("thing_groups", group["parent"]), self._group("thing_groups", name)
                    )
        strict = self.get_option("strict")
        for thing in data.get("things") or []:
            host = self.inventory.add_host(thing["name"])
            variables = {
                "iot_thing_name": thing["name"],
                "iot_thing_arn": thing.get("arn"),
                "iot_thing_type": thing.get("thing_type"),
                "iot_attributes": thing.get("attributes") or {},
                "iot_version": thing.get("version"),
                "iot_thing_groups": thing.get("thing_groups") or [],
                "iot_dynamic_thing_groups": thing.get("dynamic_thing_groups") or [],
            }
            if "billing_group" in thing:
                variables["iot_billing_group"] = thing["billing_group"]
            if "certificates" in thing:
                variables["iot_certificates"] = thing["certificates"]
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            if "thing_groups" in group_by:
                for name in variables["iot_thing_groups"] + variables["iot_dynamic_thing_groups"]:
                    self.inventory.add_host(host, group=self._group("thing_groups", name))
            if "thing_type" in group_by and thing.get("thing_type"):
                self.inventory.add_host(host, group=self._group("thing_type", thing["thing_type"]))
            if "billing_group" in group_by and thing.get("billing_group"):
                self.inventory.add_host(host, group=self._group("billing_group", thing["billing_group"]))
            hostvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
