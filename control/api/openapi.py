"""The OpenAPI 3.1 document, generated from the registry and the pydantic models (whose JSON
Schema dialect is OpenAPI 3.1's), so it cannot drift from what the views accept."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from control.api import accounts, calls, conferences, live, registry, schemas, voicemail

ERROR = {"$ref": "#/components/responses/Problem"}
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        name = model.__name__
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(def_name, definition)
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary + (f" (scope `{scope}`)" if scope else ""),
        "responses": responses | {"default": ERROR},
        "security": SECURITY,
    }
    operation.update(extra)
    return operation


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"}},
]
ID_PARAM = {"name": "row_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _filter_params(resource: registry.Resource) -> list[dict[str, Any]]:
    params = [{"name": "account_id", "in": "query", "schema": {"type": "string"}}]
    for name in resource.filters:
        annotation = resource.body.model_fields[name].annotation
        assert annotation is not None
        schema = TypeAdapter(annotation).json_schema()
        params.append({"name": name, "in": "query", "schema": schema})
    return params


def build() -> dict[str, Any]:
    c = _Components()
    paths: dict[str, Any] = {}
    for r in registry.RESOURCES:
        read = c.ref(r.read_model)
        paths[f"/v1/{r.name}"] = {
            "get": _op(f"List {r.name}", r.scope, {"200": _json(_list_of(read))},
                       parameters=PAGING + _filter_params(r)),
            "post": _op(f"Create a {r.name} row", r.scope, {"201": _json(read, "Created")},
                        requestBody=_body(c.ref(r.body))),
        }  # fmt: skip
        paths[f"/v1/{r.name}/{{row_id}}"] = {
            "parameters": [ID_PARAM],
            "get": _op(f"Read a {r.name} row", r.scope, {"200": _json(read)}),
            "patch": _op(f"Update a {r.name} row", r.scope, {"200": _json(read)},
                         requestBody=_body(c.ref(r.patch_model))),
            "delete": _op(f"Delete a {r.name} row (refused while referenced)", r.scope,
                          {"204": {"description": "Deleted"}}),
        }  # fmt: skip
    device = c.ref(registry.BY_NAME["sip_devices"].read_model)
    paths["/v1/sip_devices/{row_id}/reset_password"] = {
        "parameters": [ID_PARAM],
        "post": _op("New SIP password, returned once", "users", {"200": _json(device)}),
    }
    _tenancy_paths(paths, c)
    _flow_paths(paths, c)
    paths.update(calls.openapi_paths())
    paths.update(voicemail.openapi_paths())
    paths.update(conferences.openapi_paths())
    _live_paths(paths, c)
    paths["/healthz"] = {
        "get": {
            "summary": "Liveness and readiness",
            "security": [],
            "responses": {"200": _json({"type": "object"}), "default": ERROR},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sipio control API",
            "version": "1",
            "description": "Provisioning of the multi-tenant SIP platform. Errors are RFC 9457 "
            "problem documents. The account always comes from the credential.",
        },
        "paths": paths,
        "components": {
            "schemas": c.schemas | {"Problem": PROBLEM},
            "responses": {
                "Problem": {
                    "description": "Error (RFC 9457)",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
            },
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "required_scope": {"type": "string"},
        "referrers": {"type": "array", "items": {"type": "object"}},
    },
}

ACCOUNT_READ: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "status", "effective"],
    "properties": {
        "id": {"type": "string"},
        "parent_id": {"type": ["string", "null"]},
        "effective": {"type": "object"},
    },
}
KEY_READ: dict[str, Any] = {
    "type": "object",
    "required": ["id", "account_id", "name", "prefix", "scopes"],
    "properties": {
        "id": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "key": {"type": "string", "description": "Only in the create response."},
    },
}


def _tenancy_paths(paths: dict[str, Any], c: _Components) -> None:
    account_id = [{"name": "account_id", "in": "path", "required": True,
                   "schema": {"type": "string"}}]  # fmt: skip
    paths["/v1/whoami"] = {
        "get": _op(
            "The credential's account and scopes",
            None,
            {"200": _json({"type": "object", "required": ["accountId", "scopes", "via"]})},
        )
    }
    paths["/v1/account"] = {
        "get": _op("The credential's own account", None, {"200": _json(ACCOUNT_READ)})
    }
    paths["/v1/accounts"] = {
        "get": _op(
            "List reachable accounts",
            "accounts",
            {"200": _json(_list_of(ACCOUNT_READ))},
            parameters=PAGING,
        ),
        "post": _op(
            "Create a child account",
            "accounts",
            {"201": _json(ACCOUNT_READ)},
            requestBody=_body(c.ref(schemas.AccountIn)),
        ),
    }
    paths["/v1/accounts/{account_id}"] = {
        "parameters": account_id,
        "get": _op("Read an account", "accounts", {"200": _json(ACCOUNT_READ)}),
        "patch": _op(
            "Update an account",
            "accounts",
            {"200": _json(ACCOUNT_READ)},
            requestBody=_body(c.ref(accounts.AccountPatch)),
        ),
        "delete": _op(
            "Delete an account without children", "accounts", {"204": {"description": "Deleted"}}
        ),
    }
    key_id = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths["/v1/api_keys"] = {
        "get": _op(
            "List API keys (never the secret)",
            "keys",
            {"200": _json(_list_of(KEY_READ))},
            parameters=PAGING,
        ),
        "post": _op(
            "Create an API key; the key is shown once",
            "keys",
            {"201": _json(KEY_READ)},
            requestBody=_body(c.ref(schemas.ApiKeyIn)),
        ),
    }
    paths["/v1/api_keys/{key_id}"] = {
        "parameters": key_id,
        "get": _op("Read an API key", "keys", {"200": _json(KEY_READ)}),
        "delete": _op("Revoke an API key", "keys", {"204": {"description": "Revoked"}}),
    }
    paths["/v1/tokens"] = {
        "post": _op(
            "Mint a bearer token with an API key",
            None,
            {"201": _json({"type": "object", "required": ["token", "token_type", "expires_in"]})},
            requestBody={"content": {"application/json": {"schema": c.ref(schemas.TokenIn)}}},
        )
    }


def _flow_paths(paths: dict[str, Any], c: _Components) -> None:
    flow = {"type": "object", "required": ["id", "account_id", "name"]}
    version = {"type": "object", "required": ["flow_id", "version", "status", "document"]}
    flow_id = [{"name": "flow_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    draft = {"type": "object", "required": ["document"], "additionalProperties": False,
             "properties": {"document": {"type": "object"}}}  # fmt: skip
    name = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}},
    }
    paths["/v1/call_flows"] = {
        "get": _op("List call flows", "flows", {"200": _json(_list_of(flow))}, parameters=PAGING),
        "post": _op(
            "Create a flow with its first draft",
            "flows",
            {"201": _json(flow)},
            requestBody=_body(c.ref(schemas.CallFlowIn)),
        ),
    }
    paths["/v1/call_flows/{flow_id}"] = {
        "parameters": flow_id,
        "get": _op("Read a call flow", "flows", {"200": _json(flow)}),
        "patch": _op("Rename a call flow", "flows", {"200": _json(flow)}, requestBody=_body(name)),
        "delete": _op("Delete a call flow", "flows", {"204": {"description": "Deleted"}}),
    }
    paths["/v1/call_flows/{flow_id}/draft"] = {
        "parameters": flow_id,
        "put": _op(
            "Save the draft (opens a new version after a publish)",
            "flows",
            {"200": _json(version)},
            requestBody=_body(draft),
        ),
    }
    paths["/v1/call_flows/{flow_id}/publish"] = {
        "parameters": flow_id,
        "post": _op(
            "Validate and publish the draft; published versions are immutable",
            "flows",
            {"200": _json(flow)},
        ),
    }
    paths["/v1/call_flows/{flow_id}/versions"] = {
        "parameters": flow_id,
        "get": _op(
            "List versions",
            "flows",
            {"200": _json({"type": "object", "properties": {"items": {"type": "array"}}})},
        ),
    }
    paths["/v1/call_flows/{flow_id}/versions/{version}"] = {
        "parameters": [*flow_id, {"name": "version", "in": "path", "required": True,
                                  "schema": {"type": "integer"}}],
        "get": _op("Read one version", "flows", {"200": _json(version)}),
    }  # fmt: skip


def _live_paths(paths: dict[str, Any], c: _Components) -> None:
    count = {"type": "object", "required": ["kind", "count", "limit"]}
    cac = {
        "type": "object",
        "required": ["account_id", "calls", "counters", "windows"],
        "properties": {
            "account_id": {"type": "string"},
            "calls": {"type": "integer"},
            "counters": {"type": "array", "items": count},
            "windows": {"type": "array", "items": {"type": "object"}},
        },
    }
    reset = {"type": "object", "required": ["account_id", "mode", "calls_forgotten", "drift"]}
    agent = {
        "type": "object",
        "required": ["userId", "accountId", "status", "state", "reachable", "bucket", "queues"],
        "properties": {
            "status": {"enum": ["offline", "available", "on_break"]},
            "state": {"enum": ["waiting", "offering", "in_call", "wrap_up"]},
            "reachable": {"type": "boolean"},
            "bucket": {"type": "string"},
            "queues": {"type": "array", "items": {"type": "object"}},
        },
    }
    query = {"in": "query", "schema": {"type": "string"}}
    paths["/v1/cac"] = {
        "get": _op("Live admission counters of an account", "limits", {"200": _json(cac)},
                   parameters=[{"name": "account_id", **query}]),
    }  # fmt: skip
    paths["/v1/cac/reset"] = {
        "post": _op("Force-clear (parent) or recount an account's counters", "limits",
                    {"200": _json(reset)}, requestBody=_body(c.ref(live.CacResetIn))),
    }  # fmt: skip
    paths["/v1/agents"] = {
        "get": _op("Live agent state", "agents",
                   {"200": _json({"type": "object", "required": ["items"],
                                  "properties": {"items": {"type": "array", "items": agent}}})},
                   parameters=[{"name": "account_id", **query}, {"name": "userId", **query}]),
    }  # fmt: skip
    paths["/v1/agents/state"] = {
        "post": _op("Agent control: login, logout, available, pause", "agents",
                    {"200": _json(agent)}, requestBody=_body(c.ref(live.AgentStateIn))),
    }  # fmt: skip
    ids = {"type": "array", "items": {"type": "string"}}
    integer, string = {"type": "integer"}, {"type": "string"}
    waiting = {
        "type": "object",
        "properties": {"callId": string, "position": integer, "waitedMs": integer, "offering": ids,
                       "callback": {"type": "boolean"}},
    }  # fmt: skip
    queue_live = {
        "type": "object",
        "required": ["queueId", "accountId", "waiting", "callers", "readyAgents"],
        "properties": {
            "queueId": string,
            "accountId": string,
            "name": string,
            "waiting": integer,
            "longestWaitMs": integer,
            "callers": {"type": "array", "items": waiting},
            "offering": ids,
            "readyAgents": integer,
            "viableAgents": integer,
            "now": integer,
        },
    }
    queue_id = {"name": "queue_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/v1/queues/{queue_id}/live"] = {
        "get": _op("Live queue: callers waiting and agents ringing", "agents",
                   {"200": _json(queue_live)}, parameters=[queue_id]),
    }  # fmt: skip
    call_id = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths["/v1/queues/{queue_id}/callbacks/{call_id}"] = {
        "delete": _op("Withdraw a pending courtesy callback (409 while it is being placed)",
                      "agents", {"204": {"description": "Withdrawn"}},
                      parameters=[queue_id, call_id]),
    }  # fmt: skip
