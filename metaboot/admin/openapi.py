"""The admin API's OpenAPI 3.1 document, built from the route table and the schemas below.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the tests validate real responses against
them. The spec schema mirrors ``metaboot.metadata.instance.parse_spec`` (docs/instance-spec.md);
a test checks that it lists exactly the fields of the canonical spec.
"""

from __future__ import annotations

from typing import Any

from metaboot import __version__
from metaboot.admin.routes import ROUTES

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_STRS = {"type": "array", "items": _STR}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(kw)
    return schema


_SUBNET = _obj(
    {
        "cidr": _STR,
        "gateway": _NSTR,
        "dhcp": {"type": "boolean"},
        "ipv6_mode": {"enum": ["slaac", "dhcpv6-stateful", "dhcpv6-stateless", None]},
        "dns": _STRS,
        "routes": {
            "type": "array",
            "items": _obj(
                {"destination": _STR, "nexthop": _STR},
                ("destination", "nexthop"),
                additionalProperties=False,
            ),
        },
    },
    ("cidr",),
    additionalProperties=False,
)

_PORT = _obj(
    {
        "id": _NSTR,
        "network_id": _STR,
        "mac": _STR,
        "fixed_ips": {
            "type": "array",
            "items": _STR,
            "description": "addresses; 'ip/prefix' brings its own static subnet",
        },
        "floating_ip": _NSTR,
        "mtu": {"type": ["integer", "null"], "minimum": 68, "maximum": 65535},
        "subnets": {"type": "array", "items": _SUBNET},
        "devname": _NSTR,
        "type": {
            "enum": ["bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif", "phy"]
        },
    },
    ("network_id", "mac"),
    additionalProperties=False,
)

SPEC = _obj(
    {
        "uuid": {"type": "string", "format": "uuid"},
        "name": _NSTR,
        "hostname": _NSTR,
        "project_id": _NSTR,
        "availability_zone": _NSTR,
        "launch_index": {"type": ["integer", "null"], "minimum": 0},
        "flavor": _NSTR,
        "image_id": _NSTR,
        "keys": {
            "type": "array",
            "items": _obj(
                {"name": _STR, "type": {"enum": ["ssh", "x509"]}, "data": _STR},
                ("name", "data"),
                additionalProperties=False,
            ),
        },
        "meta": {
            "type": ["object", "null"],
            "additionalProperties": {"type": ["string", "number"]},
        },
        "user_data": {"type": ["string", "null"], "description": "user-data as text"},
        "user_data_b64": {"type": ["string", "null"], "description": "user-data, base64"},
        "vendor_data": {"type": ["object", "null"]},
        "security_groups": {"type": ["array", "null"], "items": _STR},
        "devices": {"type": ["array", "null"], "items": {"type": "object"}},
        "files": {
            "type": ["array", "null"],
            "items": _obj(
                {"path": _STR, "content": _NSTR, "content_b64": _NSTR},
                ("path",),
                additionalProperties=False,
            ),
        },
        "ports": {"type": ["array", "null"], "items": _PORT},
        "network_data": {
            "type": ["object", "null"],
            "description": "network_data.json verbatim instead of deriving it from ports",
        },
        "reservation_id": _NSTR,
        "kernel_id": _NSTR,
        "ramdisk_id": _NSTR,
        "root_device_name": _NSTR,
        "block_device_mapping": {
            "type": ["object", "null"],
            "additionalProperties": _STR,
        },
        "dedicated_cpus": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}},
        "boot_roles": {"type": ["array", "null"], "items": _STR},
        "ec2_id": {"type": ["integer", "null"], "minimum": 0},
        "metadata_options": _obj(
            {
                "http_endpoint": {"enum": ["enabled", "disabled"]},
                "http_tokens": {"enum": ["optional", "required"]},
            },
            additionalProperties=False,
        ),
    },
    ("uuid",),
    additionalProperties=False,
    description=(
        "An instance spec (docs/instance-spec.md). Requests may be JSON or YAML; responses "
        "carry the canonical form (every field explicit, binary data base64). user_data_file "
        "is not accepted over the API: the CLI reads the file and sends its content."
    ),
)

_SUMMARY_PROPS: dict[str, Any] = {
    "uuid": {"type": "string", "format": "uuid"},
    "name": _STR,
    "hostname": _STR,
    "project_id": _STR,
    "addresses": {
        "type": "array",
        "items": _obj({"network_id": _STR, "ip": _STR}, ("network_id", "ip")),
    },
    "generation": {"type": "integer", "minimum": 1, "description": "bumped by every write"},
    "password_set": {"type": "boolean"},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": {"type": "string", "description": "what is wrong, for a person"},
            "field": {
                "type": "string",
                "description": "dotted path of the spec field at fault ('' = the body itself)",
            },
        },
        ("error",),
        additionalProperties=False,
    ),
    "Spec": SPEC,
    "SpecPatch": {
        "type": "object",
        "description": (
            "A JSON merge patch (RFC 7396) over the canonical spec: mappings merge, null "
            "removes a field (back to its default), lists and other values replace. Setting "
            "user_data or user_data_b64 replaces the stored user-data."
        ),
    },
    "InstanceSummary": _obj(_SUMMARY_PROPS, tuple(_SUMMARY_PROPS), additionalProperties=False),
    "Instance": _obj(
        {
            **_SUMMARY_PROPS,
            "spec": {"$ref": "#/components/schemas/Spec"},
            "warnings": {
                "type": "array",
                "items": _STR,
                "description": "after a write: e.g. an address another instance also holds",
            },
        },
        (*_SUMMARY_PROPS, "spec"),
        additionalProperties=False,
    ),
    "InstanceList": _obj(
        {"instances": {"type": "array", "items": {"$ref": "#/components/schemas/InstanceSummary"}}},
        ("instances",),
        additionalProperties=False,
    ),
    "Password": _obj({"password": _STR}, ("password",), additionalProperties=False),
    "Router": _obj(
        {"router_id": _STR, "network_ids": {**_STRS, "minItems": 1}},
        ("router_id", "network_ids"),
        additionalProperties=False,
    ),
    "RouterList": _obj(
        {"routers": {"type": "array", "items": {"$ref": "#/components/schemas/Router"}}},
        ("routers",),
        additionalProperties=False,
    ),
    "RouterNetworks": _obj(
        {"network_ids": {**_STRS, "minItems": 1, "items": {"type": "string", "minLength": 1}}},
        ("network_ids",),
        additionalProperties=False,
    ),
}

_UNAUTHORIZED = {
    "description": "missing or wrong bearer token",
    "headers": {"WWW-Authenticate": {"schema": _STR}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _operation(route: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.handler, "summary": route.summary}
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": _STR} for p in route.params
    ]
    params += [
        {"name": h, "in": "header", "required": False, "schema": _STR} for h in route.headers
    ]
    if route.handler == "list_instances":
        params += [
            {"name": q, "in": "query", "required": False, "schema": _STR, "description": d}
            for q, d in (
                ("name", "only instances with this name"),
                ("project_id", "only this project's"),
            )
        ]
    if params:
        op["parameters"] = params
    if route.request:
        ref = {"schema": {"$ref": f"#/components/schemas/{route.request}"}}
        content = {"application/json": ref}
        if route.request_yaml:
            content["application/yaml"] = ref
        op["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.responses.items()):
        entry: dict[str, Any] = {"description": description}
        if schema is not None:
            entry["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
            }
        elif status == 200:
            entry["content"] = {"application/json": {"schema": {"type": "object"}}}
        responses[str(status)] = entry
    if route.auth:
        responses["401"] = _UNAUTHORIZED
    else:
        op["security"] = []
    op["responses"] = responses
    return op


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "metaboot admin API",
            "version": __version__,
            "description": (
                "Manage the instances the metadata service serves, their guest passwords and "
                "the routers used to resolve network-scoped requests. JSON in and out (instance "
                "specs may also be YAML). Errors are {error, field?}. Any route answers 405 "
                "(with Allow) to a method it does not have, and 500 on an internal error."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "paths": paths,
    }
