"""The machine-readable schemas (PROTOCOL.md §16): what each service serves is what the code
generates, lists exactly the routes its app has, and agrees with PROTOCOL.md (the route table,
the fields each section names, the error codes of §8)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from flame.core import openapi
from tests.api.conftest import ApiNode
from tests.cluster import Cluster, directory_tls
from tests.core.test_vectors import protocol_text

Row = tuple[str, str, str, str, str, str]


def documented_routes() -> set[Row]:
    text = protocol_text()
    table = text[text.index("<!-- routes:begin -->") : text.index("<!-- routes:end -->")]
    rows = re.findall(
        r"^\| `(\w+) (\S+)` \| (yes|no|optional) \| (\S+) \| (\S+) \| §(\S+) \|$", table, re.M
    )
    return set(rows)


def served_routes(schema: dict[str, Any]) -> set[Row]:
    rows = set()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {})
            if "application/octet-stream" in body:
                body_name = "bytes"
            elif body:
                body_name = body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            else:
                body_name = "\u2013"  # the table's dash: no body
            answer = op["responses"].get("200", op["responses"].get("201"))["content"]
            if "application/octet-stream" in answer:  # sealed chunks (§19.7)
                answer_name = "Chunks"
            else:
                schema = answer["application/json"]["schema"]
                refs = [one["$ref"] for one in schema.get("oneOf", [schema]) if "$ref" in one]
                answer_name = "/".join(ref.rsplit("/", 1)[1] for ref in refs) or "OpenAPI"
            signed = "yes" if op["security"] else "no"
            if {} in op["security"]:
                signed = "optional"  # unauthenticated, or signed to get more
            section = op["description"].removeprefix("PROTOCOL.md §")
            rows.add((method.upper(), path, signed, body_name, answer_name, section))
    return rows


def app_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
    }


def test_the_route_table_of_protocol_md_is_what_both_documents_list() -> None:
    served = served_routes(openapi.remote_api()) | served_routes(openapi.directory_api())
    assert documented_routes() == served


def section_text(section: str) -> str:
    text = protocol_text()
    heading = f"\n### {section} " if "." in section else f"\n## {section}. "
    start = text.index(heading)
    end = text.index("\n## ", start + 5)
    if "." in section:
        nxt = text.find("\n### ", start + 5)
        end = min(end, nxt) if nxt != -1 else end
    return text[start:end]


def test_every_body_field_is_named_in_its_section() -> None:
    for routes, schema in (
        (openapi.PEER_ROUTES, openapi.remote_api()),
        (openapi.DIRECTORY_ROUTES, openapi.directory_api()),
    ):
        schemas = schema["components"]["schemas"]
        for route in routes:
            if route.body is None:
                continue
            text = section_text(route.section)
            for field in schemas[route.body.__name__]["properties"]:
                assert f"`{field}`" in text or f'"{field}"' in text, (route.path, field)


def test_every_error_code_of_the_documents_is_in_the_table_of_section_8() -> None:
    table = section_text("8")
    for routes in (openapi.PEER_ROUTES, openapi.DIRECTORY_ROUTES):
        for route in routes:
            for code in route.errors:
                assert f"| `{code}` |" in table, code


def test_the_inner_kinds_have_one_schema_each() -> None:
    schemas = openapi.remote_api()["components"]["schemas"]
    kinds = {v["properties"]["kind"]["const"] for v in schemas["Inner"]["oneOf"]}
    assert kinds == set(schemas["Inner"]["properties"]["kind"]["enum"])
    for option in schemas["Inner"]["oneOf"]:
        assert option["properties"]["body"]["$ref"].rsplit("/", 1)[1] in schemas
    assert schemas["Envelope"]["additionalProperties"] is False
    assert schemas["Envelope"]["properties"]["to"]["pattern"].startswith("^[a-z]")


async def test_the_daemon_serves_its_document_and_it_lists_the_apps_routes(node: ApiNode) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(node.peer_url + "/api/v1/openapi.json") as response:
            assert response.status == 200
            served = await response.json()
    assert served == openapi.remote_api()
    assert set(app_paths(served)) == app_routes(node.peer.app)


async def test_the_directory_serves_its_document_and_it_lists_the_apps_routes(
    cluster: Cluster,
) -> None:
    directory = await cluster.start_directory()
    assert directory.listener is not None
    async with aiohttp.ClientSession() as session:
        url, tls = directory.url + "/dir/v1/openapi.json", directory_tls(cluster)
        async with session.get(url, ssl=tls) as response:
            assert response.status == 200
            served = await response.json()
    assert served == openapi.directory_api()
    assert set(app_paths(served)) == app_routes(directory.listener.app)


def app_paths(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m.upper(), path) for path, ops in schema["paths"].items() for m in ops]
