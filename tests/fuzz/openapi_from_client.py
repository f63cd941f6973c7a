"""Build an OpenAPI 3 document of Qdrant's REST API from the official Python client.

The client's `qdrant_client.http` package is generated from Qdrant's own OpenAPI document: each
`_build_for_<operation>` method names the HTTP method, the path, the path and query parameters
and the body model, and the pydantic models give the JSON schemas. Rebuilding the document from
the installed client keeps the fuzz test (tests/fuzz/run.sh) on the same API version as the
client the rest of the suite uses, with no copy of the document in this repository.

Usage: python openapi_from_client.py OUT.json [COLLECTION,...]

With collection names, the `collection_name` path parameter is limited to them, so generated
requests reach collections that exist (the run creates them) instead of answering 404 at once.
"""

import ast
import inspect
import json
import sys
import typing

import pydantic
from pydantic.json_schema import models_json_schema
from qdrant_client.http import api as api_pkg
from qdrant_client.http import models as m

API_MODULES = ["aliases_api", "beta_api", "collections_api", "distributed_api", "indexes_api", "points_api",
               "search_api", "service_api", "snapshots_api"]


def request_call(fn):
    """(method, url, path param names, query param names, body param name) of a builder."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(fn)))
    method = url = body = None
    path, query = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "request":
            for kw in node.keywords:
                if kw.arg == "method":
                    method = kw.value.value
                elif kw.arg == "url":
                    url = kw.value.value
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            target = node.targets[0]
            if isinstance(target.value, ast.Name) and isinstance(target.slice, ast.Constant):
                if target.value.id == "query_params":
                    query.append(target.slice.value)
        elif isinstance(node, ast.Dict) and not path:
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if keys and url is None and all(isinstance(k, str) for k in keys):
                path = keys
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "jsonable_encoder":
            if node.args and isinstance(node.args[0], ast.Name):
                body = node.args[0].id
    return method, url, path, query, body


def scalar_schema(annotation):
    """JSON schema of a query parameter's annotation."""
    if annotation in (int,):
        return {"type": "integer"}
    if annotation in (bool,):
        return {"type": "boolean"}
    if annotation in (float,):
        return {"type": "number"}
    if inspect.isclass(annotation) and issubclass(annotation, pydantic.BaseModel):
        return {"$ref": f"#/components/schemas/{annotation.__name__}"}
    try:
        schema = pydantic.TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        return schema
    except Exception:
        return {"type": "string"}


def break_cycles(schemas):
    """Replace every reference that closes a cycle (a filter inside a condition inside a filter,
    a prefetch inside a prefetch) by an unconstrained schema: generators then build finite
    examples quickly, and the server still gets arbitrary JSON at that depth."""
    state = {}  # name -> "active" | "done"

    def walk(node, name):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                target = ref.rsplit("/", 1)[1]
                if state.get(target) == "active":
                    node.clear()
                    return
                visit(target)
            for v in node.values():
                walk(v, name)
        elif isinstance(node, list):
            for v in node:
                walk(v, name)

    def visit(name):
        if name in state or name not in schemas:
            return
        state[name] = "active"
        walk(schemas[name], name)
        state[name] = "done"

    for name in list(schemas):
        visit(name)


def main(out, collections=None):
    paths, models = {}, set()
    for mod_name in API_MODULES:
        mod = getattr(__import__("qdrant_client.http.api", fromlist=[mod_name]), mod_name)
        for cls_name, cls in inspect.getmembers(mod, inspect.isclass):
            if not cls_name.startswith("_") or cls.__module__ != mod.__name__:
                continue
            for name, fn in inspect.getmembers(cls, inspect.isfunction):
                if not name.startswith("_build_for_"):
                    continue
                method, url, path_names, query_names, body_name = request_call(fn)
                if not method or not url:
                    continue
                hints = typing.get_type_hints(fn, vars(m))
                params = []
                for p in path_names:
                    schema = scalar_schema(hints.get(p, str))
                    if p == "collection_name" and collections:
                        schema = {"type": "string", "enum": collections}
                    params.append({"name": p, "in": "path", "required": True, "schema": schema})
                for q in query_names:
                    params.append({"name": q, "in": "query", "required": False, "schema": scalar_schema(hints.get(q, str))})
                op = {"operationId": name[len("_build_for_"):], "parameters": params,
                      "responses": {"200": {"description": "ok"}}}
                if body_name:
                    ann = hints.get(body_name)
                    args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
                    ann = args[0]
                    if inspect.isclass(ann) and issubclass(ann, pydantic.BaseModel):
                        models.add(ann)
                        schema = {"$ref": f"#/components/schemas/{ann.__name__}"}
                    else:
                        schema = scalar_schema(ann)
                    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
                paths.setdefault(url, {})[method.lower()] = op
    # Every model of the client, so references from query parameters resolve too.
    for _, cls in inspect.getmembers(m, inspect.isclass):
        if issubclass(cls, pydantic.BaseModel) and cls is not pydantic.BaseModel:
            models.add(cls)
    _, defs = models_json_schema([(c, "validation") for c in sorted(models, key=lambda c: c.__name__)],
                                 ref_template="#/components/schemas/{model}")
    break_cycles(defs.get("$defs", {}))
    doc = {"openapi": "3.0.3", "info": {"title": "Qdrant REST API (from qdrant-client)", "version": "1.19.0"},
           "paths": paths, "components": {"schemas": defs.get("$defs", {})}}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print(f"{sum(len(v) for v in paths.values())} operations, {len(doc['components']['schemas'])} schemas -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else None)
