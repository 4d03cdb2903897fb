"""The drop-in protocols' OpenAPI documents (SPEC §9): one per surface, valid, generated without a
warning, each saying what it does not support, linked from /api/v1/docs; /api/v1/schema stays native."""

import json

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

SURFACES = {
    "vault": {
        ("/v1/layers/data/{path}", "get"),
        ("/v1/layers/data/{path}", "post"),
        ("/v1/layers/data/{path}", "put"),
        ("/v1/layers/metadata/{path}", "get"),
        ("/v1/config/data/{path}", "get"),
        ("/v1/config/metadata/{path}", "get"),
        ("/v1/auth/token/lookup-self", "get"),
    },
    "spring": {
        ("/spring/{application}/{profile}", "get"),
        ("/spring/{application}/{profile}/{label}", "get"),
        ("/spring/{application}-{profile}.{ext}", "get"),
        ("/spring/{label}/{application}-{profile}.{ext}", "get"),
    },
    "ofrep": {("/ofrep/v1/evaluate/flags", "post"), ("/ofrep/v1/evaluate/flags/{key}", "post")},
}


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_protocol_schema__valid_complete_and_says_what_is_not_supported(client, surface):
    GENERATOR_STATS.reset()
    response = client.get(f"/api/v1/schema/{surface}", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert not GENERATOR_STATS, "the document was generated with warnings or errors"
    schema = json.loads(response.content)
    validate_schema(schema)
    operations = {(path, method) for path, methods in schema["paths"].items() for method in methods}
    assert operations == SURFACES[surface]
    assert "**Not supported**" in schema["info"]["description"]
    assert all(operation.get("security") for methods in schema["paths"].values() for operation in methods.values())
    ids = [operation["operationId"] for methods in schema["paths"].values() for operation in methods.values()]
    assert len(ids) == len(set(ids))
    page = client.get(f"/api/v1/docs/{surface}")
    assert page.status_code == 200 and f"/api/v1/schema/{surface}".encode() in page.content


def test_native_schema__native_paths_only__links_each_protocols_document(client):
    schema = json.loads(client.get("/api/v1/schema", HTTP_ACCEPT="application/json").content)
    assert all(path.startswith("/api/v1/") for path in schema["paths"])
    for surface in SURFACES:
        assert f"(/api/v1/docs/{surface})" in schema["info"]["description"]
    assert "`Authorization: Bearer <service token>`" in schema["info"]["description"]
