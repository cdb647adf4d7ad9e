"""Every admin API route as data: the dispatcher and the OpenAPI document both read this table,
so a route cannot exist in one and not in the other."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

API_PREFIX = "/v1"
OPENAPI_PATH = "/openapi.json"


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # "/v1/instances/{uuid}"
    handler: str  # AdminApp method name
    summary: str
    # status -> (description, component schema name or None for no body)
    responses: Mapping[int, tuple[str, str | None]]
    request: str | None = None  # component schema name of the request body
    request_yaml: bool = False  # the body may also be YAML
    auth: bool = True
    headers: tuple[str, ...] = ()  # request headers the route reads (documented as parameters)
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.template)


_BAD = (400, ("the request is invalid; `field` names the culprit when there is one", "Error"))
_NOT_FOUND = (404, ("no such instance", "Error"))
_NO_ROUTER = (404, ("no such router (or it has no such network)", "Error"))
_TOO_LARGE = (413, ("the request body is larger than the API accepts", "Error"))
_MEDIA = (415, ("the body is neither JSON nor YAML", "Error"))

_INST = f"{API_PREFIX}/instances"
_ROUT = f"{API_PREFIX}/routers"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        OPENAPI_PATH,
        "openapi",
        "This document",
        {200: ("the OpenAPI 3.1 document", None)},
        auth=False,
    ),
    Route(
        "GET",
        _INST,
        "list_instances",
        "List instances (without their specs)",
        {200: ("the instances, by name", "InstanceList")},
    ),
    Route(
        "POST",
        _INST,
        "create_instance",
        "Create an instance from a spec",
        {
            201: ("created; Location and ETag name it", "Instance"),
            **dict([_BAD, _TOO_LARGE, _MEDIA]),
            409: ("an instance with this uuid exists", "Error"),
        },
        request="Spec",
        request_yaml=True,
    ),
    Route(
        "GET",
        _INST + "/{uuid}",
        "show_instance",
        "Show an instance with its canonical spec",
        {200: ("the instance; ETag is its generation", "Instance"), **dict([_NOT_FOUND])},
    ),
    Route(
        "PUT",
        _INST + "/{uuid}",
        "replace_instance",
        "Replace an instance's spec (its password is kept)",
        {
            200: ("replaced", "Instance"),
            **dict([_BAD, _NOT_FOUND, _TOO_LARGE, _MEDIA]),
            412: ("If-Match names a generation that is no longer current", "Error"),
        },
        request="Spec",
        request_yaml=True,
        headers=("If-Match",),
    ),
    Route(
        "PATCH",
        _INST + "/{uuid}",
        "patch_instance",
        "Change some fields of an instance's spec (JSON merge patch, RFC 7396)",
        {
            200: ("changed", "Instance"),
            **dict([_BAD, _NOT_FOUND, _TOO_LARGE, _MEDIA]),
            412: ("If-Match names a generation that is no longer current", "Error"),
        },
        request="SpecPatch",
        request_yaml=True,
        headers=("If-Match",),
    ),
    Route(
        "DELETE",
        _INST + "/{uuid}",
        "delete_instance",
        "Delete an instance",
        {204: ("deleted", None), **dict([_NOT_FOUND])},
    ),
    Route(
        "GET",
        _INST + "/{uuid}/password",
        "show_password",
        "The password the guest posted (nova's os-server-password); '' when none",
        {200: ("the stored value, usually encrypted and base64-encoded", "Password")}
        | dict([_NOT_FOUND]),
    ),
    Route(
        "DELETE",
        _INST + "/{uuid}/password",
        "clear_password",
        "Forget the stored password so the guest may post a new one",
        {204: ("cleared (the guest's actual password is unchanged)", None), **dict([_NOT_FOUND])},
    ),
    Route("GET", _ROUT, "list_routers", "List routers", {200: ("the routers", "RouterList")}),
    Route(
        "GET",
        _ROUT + "/{router_id}",
        "show_router",
        "Show a router's networks",
        {200: ("the router", "Router"), **dict([_NO_ROUTER])},
    ),
    Route(
        "PUT",
        _ROUT + "/{router_id}",
        "replace_router",
        "Create a router or replace its networks",
        {200: ("the router", "Router"), **dict([_BAD, _TOO_LARGE, _MEDIA])},
        request="RouterNetworks",
    ),
    Route(
        "DELETE",
        _ROUT + "/{router_id}",
        "delete_router",
        "Delete a router",
        {204: ("deleted", None), **dict([_NO_ROUTER])},
    ),
    Route(
        "POST",
        _ROUT + "/{router_id}/networks",
        "attach_networks",
        "Attach networks to a router (creating it)",
        {200: ("the router", "Router"), **dict([_BAD, _TOO_LARGE, _MEDIA])},
        request="RouterNetworks",
    ),
    Route(
        "DELETE",
        _ROUT + "/{router_id}/networks/{network_id}",
        "detach_network",
        "Detach one network from a router",
        {204: ("detached", None), **dict([_NO_ROUTER])},
    ),
)
