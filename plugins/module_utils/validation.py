# Copyright: iotfleet.provisioning contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS IoT input limits, checked before the first AWS call.

The lengths and patterns come from botocore's IoT service model (the shapes
ThingName, ThingTypeName, ThingGroupName, AttributeName, AttributeValue,
ThingTypeDescription, ThingGroupDescription, TagKey, TagValue); the counts from
the AWS IoT quotas. botocore checks types and minimum lengths on the client but
neither patterns nor maximum lengths, so without these checks a bad value would
only fail at AWS, after earlier calls may already have changed something.

Every check raises ``ValidationError(field, rule)`` so that the message names the
option and the rule that was broken. The functions are small and general so
that every resource family can use them.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional

from ansible_collections.iotfleet.provisioning.plugins.module_utils.errors import ValidationError

# ThingName, ThingTypeName, ThingGroupName, BillingGroupName share one shape.
RESOURCE_NAME_PATTERN = r"[a-zA-Z0-9:_-]+"
RESOURCE_NAME_RULE = "letters, digits, ':', '_' and '-'"
RESOURCE_NAME_MAX = 128

ATTRIBUTE_NAME_PATTERN = r"[a-zA-Z0-9_.,@/:#-]+"
ATTRIBUTE_NAME_RULE = "letters, digits and _ . , @ / : # -"
ATTRIBUTE_NAME_MAX = 128
ATTRIBUTE_VALUE_PATTERN = r"[a-zA-Z0-9_.,@/:#=\[\]-]*"
ATTRIBUTE_VALUE_RULE = "letters, digits and _ . , @ / : # = [ ] -"
ATTRIBUTE_VALUE_MAX = 800

# ThingTypeDescription and ThingGroupDescription: [\p{Graph}\x20]* in the model,
# that is printable ASCII and the space (Java's \p{Graph} is ASCII-only).
DESCRIPTION_PATTERN = r"[\x20-\x7e]*"
DESCRIPTION_RULE = "printable ASCII and spaces, no tabs or line breaks"
DESCRIPTION_MAX = 2028

TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
TAG_KEY_EXTRA_CHARACTERS = "_.:/=+-@"
MAX_TAGS = 50

# botocore's PolicyName shape: 1-128 characters of [\w+=,.@-]; AWS evaluates \w as ASCII letters,
# digits and underscore.
POLICY_NAME_CHARACTER = r"[A-Za-z0-9_+=,.@-]"
POLICY_NAME_MAX = 128

# The principals of AttachThingPrincipal / DetachThingPrincipal this collection accepts: a certificate ARN, a
# certificate id (the SHA-256 of the certificate's DER, turned into its ARN), or an Amazon Cognito identity id
# (Cognito's IdentityId shape: [\w-]+:[0-9a-f-]+, at most 55 characters).
CERTIFICATE_ID_PATTERN = r"[0-9a-fA-F]{64}"
CERTIFICATE_ARN_PATTERN = r"arn:aws[a-z-]*:iot:[a-z0-9-]+:[0-9]{12}:cert/[0-9a-fA-F]{64}"
COGNITO_IDENTITY_ID_PATTERN = r"[A-Za-z0-9_-]+:[0-9a-f-]+"
COGNITO_IDENTITY_ID_MAX = 55
PRINCIPAL_RULE = (
    "a certificate ARN (arn:PARTITION:iot:REGION:ACCOUNT:cert/ID), a certificate id (64 hexadecimal characters) "
    "or an Amazon Cognito identity id (REGION:ID), matched whole"
)

MAX_ATTRIBUTES_WITHOUT_TYPE = 3
MAX_ATTRIBUTES_WITH_TYPE = 50
MAX_THING_GROUP_ATTRIBUTES = 50
MAX_THING_GROUPS_PER_THING = 10
MAX_SEARCHABLE_ATTRIBUTES = 3
# AWS IoT quota: at most 10 policies attached to one certificate.
MAX_POLICIES_PER_CERTIFICATE = 10

# botocore IoT model: CertificateSigningRequest 1-4096, CertificatePem 1-65536 characters; a policy document at
# most 2048 characters, whitespace excluded (AWS IoT quotas).
CSR_MAX = 4096
CERTIFICATE_PEM_MAX = 65536
POLICY_DOCUMENT_MAX = 2048


def _shown(value: str, limit: int = 40) -> str:
    """The value as it goes into a message: quoted, long ones cut."""
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def check_string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    return value


def check_length(field: str, value: str, max_len: int, min_len: int = 0) -> str:
    if len(value) < min_len:
        if min_len == 1:
            raise ValidationError(field, "must not be empty")
        raise ValidationError(field, f"must be at least {min_len} characters, got {len(value)}")
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(value)}")
    return value


def check_pattern(field: str, value: str, pattern: str, rule: str = "") -> str:
    if re.fullmatch(pattern, value) is None:
        allowed = f" ({rule})" if rule else ""
        raise ValidationError(field, f"must match {pattern}{allowed}, got {_shown(value)}")
    return value


def check_name(
    field: str,
    value: Any,
    max_len: int = RESOURCE_NAME_MAX,
    pattern: str = RESOURCE_NAME_PATTERN,
    rule: str = RESOURCE_NAME_RULE,
    min_len: int = 1,
) -> str:
    """A resource name: a string of min_len..max_len characters matching pattern."""
    value = check_string(field, value)
    check_length(field, value, max_len, min_len)
    return check_pattern(field, value, pattern, rule)


def check_thing_name(field: str, value: Any) -> str:
    return check_name(field, value)


def check_thing_type_name(field: str, value: Any) -> str:
    return check_name(field, value)


def check_thing_group_name(field: str, value: Any) -> str:
    return check_name(field, value)


def check_policy_name(field: str, value: Any) -> str:
    """An IoT policy name; the message lists the characters AWS would refuse."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, f"a policy name must be 1-{POLICY_NAME_MAX} characters, got an empty value")
    if len(value) > POLICY_NAME_MAX:
        raise ValidationError(field, f"a policy name must be at most {POLICY_NAME_MAX} characters, got {len(value)}")
    bad = sorted({ch for ch in value if not re.fullmatch(POLICY_NAME_CHARACTER, ch)})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise ValidationError(
            field,
            "a policy name may contain only letters, digits and _+=,.@- (AWS pattern [\\w+=,.@-]+), "
            f"got {_shown(value)} with {shown}",
        )
    return value


def check_principal(field: str, value: Any) -> str:
    """A thing principal: a certificate ARN or id, or a Cognito identity id, the whole value (no line breaks)."""
    value = check_string(field, value)
    if (
        re.fullmatch(CERTIFICATE_ARN_PATTERN, value)
        or re.fullmatch(CERTIFICATE_ID_PATTERN, value)
        or (len(value) <= COGNITO_IDENTITY_ID_MAX and re.fullmatch(COGNITO_IDENTITY_ID_PATTERN, value))
    ):
        return value
    raise ValidationError(field, f"must be {PRINCIPAL_RULE}, got {_shown(value, 140)}")


def check_description(field: str, value: Any, max_len: int = DESCRIPTION_MAX) -> str:
    """A thing type or thing group description (may be empty)."""
    return check_name(field, value, max_len, DESCRIPTION_PATTERN, DESCRIPTION_RULE, min_len=0)


def scalar_text(value: Any) -> Optional[str]:
    """The string AWS receives for a YAML scalar (an attribute value, a template parameter): strings as given,
    booleans as true/false, numbers as written; None for anything else, which each caller refuses in its words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def attribute_value_text(field: str, value: Any) -> str:
    """The string AWS stores for a YAML scalar: numbers as written, booleans as true/false."""
    text = scalar_text(value)
    if text is not None:
        return text
    if value is None:
        raise ValidationError(field, 'must be a string; use "" to remove the attribute')
    raise ValidationError(field, f"must be a string, got {type(value).__name__}")


def check_attribute_name(field: str, name: Any) -> str:
    return check_name(field, name, ATTRIBUTE_NAME_MAX, ATTRIBUTE_NAME_PATTERN, ATTRIBUTE_NAME_RULE)


def check_attribute_value(field: str, value: Any) -> str:
    text = attribute_value_text(field, value)
    return check_name(field, text, ATTRIBUTE_VALUE_MAX, ATTRIBUTE_VALUE_PATTERN, ATTRIBUTE_VALUE_RULE, min_len=0)


def check_attributes(field: str, attributes: Any) -> dict[str, str]:
    """A name -> value map of thing or thing group attributes, values as strings.

    An empty value is kept: AWS reads it as "remove this attribute".
    """
    if not isinstance(attributes, Mapping):
        raise ValidationError(
            field, f"must be a dictionary of attribute names to values, got {type(attributes).__name__}"
        )
    result: dict[str, str] = {}
    for name, value in attributes.items():
        name = check_attribute_name(f"{field}", name)
        result[name] = check_attribute_value(f"{field}.{name}", value)
    return result


def check_count(field: str, count: int, limit: int, subject: str, noun: str, verb: str = "can have") -> int:
    """Fail when count exceeds limit: "<subject> <verb> at most <limit> <noun>, got <count>"."""
    if count > limit:
        raise ValidationError(field, f"{subject} {verb} at most {limit} {noun}, got {count}")
    return count


def max_thing_attributes(has_thing_type: bool) -> int:
    return MAX_ATTRIBUTES_WITH_TYPE if has_thing_type else MAX_ATTRIBUTES_WITHOUT_TYPE


def check_thing_attribute_count(field: str, count: int, has_thing_type: bool) -> int:
    """3 attributes for a thing without a thing type, 50 with one."""
    kind = "with" if has_thing_type else "without"
    return check_count(field, count, max_thing_attributes(has_thing_type), f"a thing {kind} a thing type", "attributes")


def check_unique_names(field: str, values: Any, check: Any = check_name) -> list[str]:
    """A list of names, each checked with `check(field, name)`, duplicates dropped, order kept."""
    if not isinstance(values, (list, tuple)):
        raise ValidationError(field, f"must be a list, got {type(values).__name__}")
    seen: list[str] = []
    for value in values:
        name = check(field, value)
        if name not in seen:
            seen.append(name)
    return seen


def _is_tag_key_character(char: str) -> bool:
    # TagKey: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$ -- any letter, separator or number.
    return char.isalpha() or char.isnumeric() or char.isspace() or char in TAG_KEY_EXTRA_CHARACTERS


def check_tags(field: str, tags: Any) -> dict[str, str]:
    """A key -> value map of resource tags; keys starting with 'aws:' are reserved by AWS."""
    if not isinstance(tags, Mapping):
        raise ValidationError(field, f"must be a dictionary of tag keys to values, got {type(tags).__name__}")
    check_count(field, len(tags), MAX_TAGS, "a resource", "tags")
    result: dict[str, str] = {}
    for key, value in tags.items():
        key = check_string(field, key)
        check_length(field, key, TAG_KEY_MAX, 1)
        bad = [c for c in key if not _is_tag_key_character(c)]
        if bad:
            raise ValidationError(
                field, f"tag key {_shown(key)} may hold letters, numbers, spaces and {TAG_KEY_EXTRA_CHARACTERS} only"
            )
        if key.lower().startswith("aws:"):
            raise ValidationError(field, f"tag key {_shown(key)}: keys starting with 'aws:' are reserved for AWS")
        text = attribute_value_text(f"{field}.{key}", value)
        result[key] = check_length(f"{field}.{key}", text, TAG_VALUE_MAX)
    return result


def check_writable_file(path: str, field_name: str) -> None:
    """A file the module is to write: not a directory, in a directory that exists and is writable."""
    if os.path.isdir(path):
        raise ValidationError(field_name, f"{path} is a directory; give a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValidationError(field_name, f"the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValidationError(field_name, f"the directory {directory} is not writable")


def check_positive_int(field: str, value: Any, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(field, f"must be {'zero or more' if allow_zero else 'more than zero'}, got {value}")
    return value


__all__ = [
    "ATTRIBUTE_NAME_MAX",
    "ATTRIBUTE_NAME_PATTERN",
    "ATTRIBUTE_VALUE_MAX",
    "ATTRIBUTE_VALUE_PATTERN",
    "CERTIFICATE_PEM_MAX",
    "CSR_MAX",
    "DESCRIPTION_MAX",
    "MAX_ATTRIBUTES_WITHOUT_TYPE",
    "MAX_ATTRIBUTES_WITH_TYPE",
    "MAX_POLICIES_PER_CERTIFICATE",
    "MAX_SEARCHABLE_ATTRIBUTES",
    "MAX_THING_GROUPS_PER_THING",
    "MAX_THING_GROUP_ATTRIBUTES",
    "POLICY_DOCUMENT_MAX",
    "RESOURCE_NAME_MAX",
    "RESOURCE_NAME_PATTERN",
    "check_attribute_name",
    "check_attribute_value",
    "check_attributes",
    "check_count",
    "check_description",
    "check_length",
    "check_name",
    "check_pattern",
    "check_positive_int",
    "check_principal",
    "check_string",
    "check_tags",
    "check_thing_attribute_count",
    "check_thing_group_name",
    "check_thing_name",
    "check_thing_type_name",
    "check_unique_names",
    "check_writable_file",
    "max_thing_attributes",
]


# The argument spec of declared_resources where it takes policies only (doc fragment declared_policies).
DECLARED_POLICIES_OPTION: dict[str, Any] = dict(type="dict", options=dict(policies=dict(type="list", elements="str")))


def validate_declared(declared: Any, keys: tuple[str, ...]) -> dict[str, list[str]]:
    """O(declared_resources): the policies (thing types, billing groups) earlier tasks of the play create, checked.

    In check mode those tasks only predict what they create, so a module planning after them treats these
    names as existing instead of failing on them.
    """
    checks = {
        "policies": check_policy_name,
        "thing_types": check_thing_type_name,
        "billing_groups": check_thing_group_name,  # botocore's BillingGroupName is the thing group name rule
    }
    names: dict[str, list[str]] = {key: [] for key in keys}
    if declared is None:
        return names
    if not isinstance(declared, Mapping):
        raise ValidationError("declared_resources", f"must be a dictionary, got {type(declared).__name__}")
    unknown = sorted(set(declared) - set(keys))
    if unknown:
        listed = keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
        raise ValidationError("declared_resources", f"takes the keys {listed}, got {unknown[0]!r}")
    for key in keys:
        values = declared.get(key) or []
        if not isinstance(values, list):
            raise ValidationError(f"declared_resources.{key}", f"must be a list, got {type(values).__name__}")
        names[key] = sorted({checks[key](f"declared_resources.{key}[{i}]", v) for i, v in enumerate(values)})
    return names
