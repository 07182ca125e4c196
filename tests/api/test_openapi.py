"""The API description layer: one declaration gives Starlette routes and a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urljoin

import msgspec
import pytest
from fxhost.api.openapi.declare import Api, Link, Operation, Resp, WebSocketOperation, component, problem_resp
from fxhost.api.openapi.decode import decode_json_body, decode_query
from fxhost.api.openapi.document import openapi_document
from fxhost.api.openapi.pages import docs_routes
from fxhost.api.openapi.problems import (
    PROBLEM_JSON,
    FieldProblem,
    Problem,
    ProblemException,
    ValidationProblem,
)
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

# --------------------------------------------------------------------------- a toy API


class ReverbParams(msgspec.Struct, forbid_unknown_fields=True):
    room_size: Annotated[float, msgspec.Meta(ge=0.0, le=1.0, description="Size of the room")] = 0.5
    wet: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.3


class Step(msgspec.Struct, forbid_unknown_fields=True):
    effect: str
    params: ReverbParams


class Chain(msgspec.Struct, forbid_unknown_fields=True):
    """An ordered list of effect steps."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[a-z0-9_-]+$")]
    steps: list[Step]


class AssetQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100, description="Page size")] = 20
    order: Literal["asc", "desc"] = "asc"
    prefix: Annotated[str | None, msgspec.Meta(description="Name prefix")] = None
    tag: list[str] = []


class Asset(msgspec.Struct):
    id: int
    name: str
    sample_rate: int
    channels: int


class Level(msgspec.Struct):
    rms_db: float
    peak_db: float


class StreamConfig(msgspec.Struct, tag="config"):
    sample_rate: int
    channels: int


class StreamError(msgspec.Struct, tag="error"):
    message: str


ASSETS = [Asset(1, "drums", 48000, 2), Asset(2, "vocal", 44100, 1)]


async def list_assets(request: Request) -> Response:
    try:
        q = decode_query(request, AssetQuery)
    except ProblemException as exc:
        problem = exc.to_problem(instance=request.url.path)
        return Response(msgspec.json.encode(problem), exc.status, media_type=PROBLEM_JSON)
    items = [a for a in ASSETS if q.prefix is None or a.name.startswith(q.prefix)][: q.limit]
    return Response(msgspec.json.encode({"items": items, "tag": q.tag}), media_type="application/json")


async def upload_asset(request: Request) -> Response:
    return Response(status_code=201)


async def get_asset(request: Request) -> Response:
    return Response(msgspec.json.encode(ASSETS[0]), media_type="application/json")


async def delete_asset(request: Request) -> Response:
    return Response(status_code=204)


async def download_asset(request: Request) -> Response:
    return Response(b"RIFF", media_type="audio/wav")


async def save_chain(request: Request) -> Response:
    try:
        chain = decode_json_body(await request.body(), Chain)
    except ProblemException as exc:
        return Response(msgspec.json.encode(exc.to_problem()), exc.status, media_type=PROBLEM_JSON)
    return Response(msgspec.json.encode(chain), media_type="application/json")


async def stream_levels(request: Request) -> Response:
    async def events():
        yield b"data: " + msgspec.json.encode(Level(-20.0, -6.0)) + b"\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def stream_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.path_params["name"])
    await websocket.close()


ROUTES = [
    Operation(
        "GET",
        "/api/assets",
        list_assets,
        summary="List assets",
        tags=["assets"],
        query=AssetQuery,
        responses={200: list[Asset]},
    ),
    Operation(
        "POST",
        "/api/assets",
        upload_asset,
        summary="Upload audio",
        tags=["assets"],
        raw_body={"audio/*": "An audio file", "multipart/form-data": "An audio file in a form"},
        responses={
            201: Resp(Asset, description="Stored"),
            413: problem_resp("Upload too large"),
            415: problem_resp("Not audio"),
        },
    ),
    Operation(
        "GET",
        "/api/assets/{asset_id:int}",
        get_asset,
        summary="One asset",
        tags=["assets"],
        responses={200: Asset},
    ),
    Operation(
        "DELETE",
        "/api/assets/{asset_id:int}",
        delete_asset,
        summary="Delete an asset",
        tags=["assets"],
        responses={204: None},
    ),
    Operation(
        "GET",
        "/api/assets/{asset_id:int}/audio",
        download_asset,
        summary="Download audio",
        tags=["assets"],
        responses={
            200: Resp(
                media_type="audio/*",
                binary=True,
                description="The audio",
                headers={"Content-Disposition": "attachment; filename=..."},
            )
        },
    ),
    Operation(
        "PUT",
        "/api/chains/{name}",
        save_chain,
        summary="Save a chain",
        tags=["chains"],
        body=Chain,
        example={"name": "hall", "steps": [{"effect": "reverb", "params": {"room_size": 0.9}}]},
        responses={200: Chain},
    ),
    Operation(
        "GET",
        "/api/streams/{name}/levels",
        stream_levels,
        summary="Level meter",
        tags=["streams"],
        responses={200: Resp(Level, media_type="text/event-stream", description="Levels, 10 per second")},
    ),
    WebSocketOperation(
        "/api/streams/{name}/ws",
        stream_ws,
        summary="Stream audio through a chain",
        description="Send a config message, then binary PCM frames.",
        tags=["streams"],
        client_messages=[StreamConfig],
        server_messages=[StreamError],
    ),
]


def make_api() -> Api:
    return Api("toy", "1.2.3", "A toy API.", tags={"assets": "Uploaded audio"}, routes=ROUTES)


@pytest.fixture(scope="module")
def api() -> Api:
    return make_api()


@pytest.fixture(scope="module")
def doc(api: Api) -> dict:
    return openapi_document(api)


@pytest.fixture(scope="module")
def client(api: Api):
    app = Starlette(routes=api.routes() + docs_routes(api))
    with TestClient(app) as client:
        yield client


# --------------------------------------------------------------------------- the document


def test_document_is_valid_openapi_3_1(doc: dict) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "toy" and doc["info"]["version"] == "1.2.3"
    assert doc["tags"][0] == {"name": "assets", "description": "Uploaded audio"}
    assert [t["name"] for t in doc["tags"]] == ["assets", "chains", "streams"]


def test_components_hold_the_structs(doc: dict) -> None:
    schemas = doc["components"]["schemas"]
    assert {"Chain", "Step", "ReverbParams", "Asset", "Level", "Problem", "FieldProblem"} <= set(schemas)
    assert "AssetQuery" not in schemas  # inlined as parameters
    room = schemas["ReverbParams"]["properties"]["room_size"]
    assert room == {
        "description": "Size of the room",
        "type": "number",
        "minimum": 0.0,
        "maximum": 1.0,
        "default": 0.5,
    }
    assert schemas["Step"]["properties"]["params"] == {"$ref": "#/components/schemas/ReverbParams"}
    assert schemas["Chain"]["properties"]["name"]["pattern"] == "^[a-z0-9_-]+$"
    put = doc["paths"]["/api/chains/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Chain"
    }
    assert put["requestBody"]["required"] is True


def test_query_parameters_carry_constraints(doc: dict) -> None:
    params = {p["name"]: p for p in doc["paths"]["/api/assets"]["get"]["parameters"]}
    assert set(params) == {"limit", "order", "prefix", "tag"}
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())
    assert params["limit"]["description"] == "Page size"
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert params["order"]["schema"] == {"enum": ["asc", "desc"], "default": "asc"}
    assert params["prefix"]["description"] == "Name prefix"
    assert params["tag"]["schema"]["type"] == "array" and params["tag"]["explode"] is True


def test_path_parameters(doc: dict) -> None:
    assert "/api/assets/{asset_id}" in doc["paths"]  # the convertor is not part of the OpenAPI path
    item = doc["paths"]["/api/assets/{asset_id}"]
    assert set(item) == {"get", "delete"}
    (param,) = item["get"]["parameters"]
    assert param == {
        "name": "asset_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
    (param,) = doc["paths"]["/api/chains/{name}"]["put"]["parameters"]
    assert param["schema"] == {"type": "string"}


def test_problem_responses_on_every_operation(doc: dict) -> None:
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors", "instance"}
    assert set(problem["required"]) == {"title", "status", "detail"}
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status in ("400", "404", "422", "500"):
                assert op["responses"][status]["content"] == {PROBLEM_JSON: {"schema": ref}}, (path, method)
            honest = {"413", "415"} & set(op["responses"])
            assert not honest or op["operationId"] == "upload_asset"
    upload = doc["paths"]["/api/assets"]["post"]["responses"]
    assert upload["413"]["description"] == "Upload too large"
    assert upload["413"]["content"][PROBLEM_JSON]["schema"] == ref


def test_bodies_and_responses(doc: dict) -> None:
    listing = doc["paths"]["/api/assets"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing == {"type": "array", "items": {"$ref": "#/components/schemas/Asset"}}

    upload = doc["paths"]["/api/assets"]["post"]
    content = upload["requestBody"]["content"]
    assert content["audio/*"]["schema"] == {
        "type": "string",
        "format": "binary",
        "description": "An audio file",
    }
    form = content["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary" and form["required"] == ["file"]
    assert upload["responses"]["201"]["description"] == "Stored"
    assert "200" not in upload["responses"]

    audio = doc["paths"]["/api/assets/{asset_id}/audio"]["get"]["responses"]["200"]
    assert audio["content"] == {"audio/*": {"schema": {"type": "string", "format": "binary"}}}
    assert "Content-Disposition" in audio["headers"]

    deleted = doc["paths"]["/api/assets/{asset_id}"]["delete"]["responses"]["204"]
    assert "content" not in deleted

    sse = doc["paths"]["/api/streams/{name}/levels"]["get"]["responses"]["200"]["content"][
        "text/event-stream"
    ]
    # One event, as OpenAPI before 3.2 describes an event stream (3.2: itemSchema): its
    # data is a string holding JSON of the declared type.
    event = sse["schema"]
    assert event["type"] == "object" and event["required"] == ["event", "data"]
    assert event["properties"]["data"]["contentMediaType"] == "application/json"
    assert event["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Level"}


def test_websockets_are_described(doc: dict) -> None:
    (ws,) = doc["x-websockets"]
    assert ws["path"] == "/api/streams/{name}/ws" and ws["operationId"] == "stream_ws"
    assert ws["clientMessages"] == [{"$ref": "#/components/schemas/StreamConfig"}]
    assert ws["serverMessages"] == [{"$ref": "#/components/schemas/StreamError"}]
    assert "StreamConfig" in doc["components"]["schemas"]
    assert "/api/streams/{name}/ws" in doc["info"]["description"]


async def handler(request: Request) -> Response: ...


async def other(request: Request) -> Response: ...


def test_operation_ids_are_unique_and_the_document_is_cached() -> None:
    first_route = Operation("GET", "/a", handler, summary="a")
    api = Api("t", "1", routes=[first_route])
    first = openapi_document(api)
    assert openapi_document(api) is first
    with pytest.raises(ValueError, match="operationId 'handler'"):
        Api("t", "1", routes=[first_route, Operation("GET", "/b", handler, summary="b")])
    with pytest.raises(ValueError, match="operationId 'handler'"):
        Api(
            "t",
            "1",
            routes=[first_route, Operation("POST", "/c", other, summary="c", operation_id="handler")],
        )
    with pytest.raises(ValueError, match="declared twice"):
        Api("t", "1", routes=[first_route, Operation("GET", "/a", other, summary="again")])
    with pytest.raises(TypeError, match=r"msgspec\.Struct"):
        Operation("GET", "/d", handler, summary="d", query=dict)
    with pytest.raises(ValueError, match="unknown path convertor"):
        Operation("GET", "/e/{x:nope}", handler, summary="e")

    class BadQuery(msgspec.Struct):
        name: Annotated[str | None, msgspec.Meta(max_length=3)] = None  # Meta must go on `str`

    with pytest.raises(TypeError, match="GET /f: BadQuery is not a valid msgspec type: Can only set"):
        Operation("GET", "/f", handler, summary="f", query=BadQuery)
    with pytest.raises(TypeError, match="POST /f: BadQuery is not a valid msgspec type"):
        Operation("POST", "/f", handler, summary="f", body=BadQuery)

    second = Api(
        "t",
        "1",
        routes=[first_route, Operation("POST", "/a", other, summary="post a", operation_id="post_a")],
    )
    assert openapi_document(second) is not first
    assert set(openapi_document(second)["paths"]["/a"]) == {"get", "post"}
    assert [op.operation_id for op in second.operations] == ["handler", "post_a"]
    assert second.operation("post_a").method == "POST"


def test_errors_override_and_security() -> None:
    api = Api(
        "t",
        "1",
        security_schemes={"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        security=[{"apiKey": []}],
        routes=[Operation("GET", "/health", handler, summary="health", errors=[500], security=[])],
    )
    doc = openapi_document(api)
    validate(doc)
    op = doc["paths"]["/health"]["get"]
    assert set(op["responses"]) == {"200", "500"}
    assert op["security"] == []
    assert doc["security"] == [{"apiKey": []}]
    assert "apiKey" in doc["components"]["securitySchemes"]


# --------------------------------------------------------------------------- served


def test_routes_serve_the_endpoints(client: TestClient) -> None:
    assert client.get("/api/assets/1").json()["name"] == "drums"
    assert client.delete("/api/assets/1").status_code == 204
    assert client.patch("/api/assets/1").status_code == 405
    assert client.get("/api/assets/1/audio").content == b"RIFF"
    with client.stream("GET", "/api/streams/main/levels") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert b"rms_db" in r.read()
    with client.websocket_connect("/api/streams/main/ws") as ws:
        assert ws.receive_text() == "main"


def test_openapi_json_is_served(client: TestClient, doc: dict) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == msgspec.json.decode(msgspec.json.encode(doc))


def test_openapi_json_behind_a_prefix_names_the_server(api: Api) -> None:
    app = Starlette(routes=docs_routes(api))
    with TestClient(app, root_path="/fx") as client:
        assert client.get("/fx/openapi.json").json()["servers"] == [{"url": "/fx"}]


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css"}),
        ("/redoc", {"redoc.standalone.js": "javascript"}),
    ],
)
def test_docs_pages_work_offline(client: TestClient, page: str, assets: dict[str, str]) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page_html = r.text
    assert "http://" not in page_html and "https://" not in page_html
    assert "//" not in re.sub(r"<script>.*?</script>", "", page_html, flags=re.S).replace("<!doctype", "")
    assert '"openapi.json"' in page_html  # relative to the page
    urls = re.findall(r'(?:src|href)="([^"]+)"', page_html)
    referenced = {url.rsplit("/", 1)[-1]: url for url in urls if not url.startswith("data:")}
    assert set(referenced) == set(assets)
    for name, kind in assets.items():
        url = referenced[name]
        assert not url.startswith("/") and "://" not in url
        asset = client.get(urljoin(f"http://testserver{page}", url))
        assert asset.status_code == 200, url
        assert kind in asset.headers["content-type"]
        assert len(asset.content) > 100_000
        assert b"sourceMappingURL" not in asset.content[-200:]
    if page == "/docs":
        assert "validatorUrl: null" in page_html  # no call to validator.swagger.io
    else:
        assert "fonts.googleapis" not in page_html


def test_vendored_licenses_are_served(client: TestClient) -> None:
    assert "Apache License" in client.get("/docs/static/swagger-ui/LICENSE").text
    assert "MIT" in client.get("/docs/static/redoc/LICENSE").text


def test_docs_pages_under_other_urls() -> None:
    api = make_api()
    app = Starlette(
        routes=docs_routes(api, "/api/openapi.json", docs_url="/api/docs", redoc_url="/api/redoc")
    )
    with TestClient(app) as client:
        page_html = client.get("/api/docs").text
        assert '"openapi.json"' in page_html
        assert 'href="../docs/static/swagger-ui/swagger-ui.css"' in page_html
        assert client.get("/docs/static/swagger-ui/swagger-ui.css").status_code == 200
        assert client.get("/api/openapi.json").status_code == 200


# --------------------------------------------------------------------------- decoding


def test_json_body_errors_name_the_field() -> None:
    raw = b'{"name": "vocal", "steps": [{"effect": "reverb", "params": {"room_size": 3}}]}'
    with pytest.raises(ValidationProblem) as info:
        decode_json_body(raw, Chain)
    exc = info.value
    assert exc.status == 422
    assert exc.errors == [FieldProblem("steps[0].params.room_size", "Expected float <= 1.0")]
    problem = exc.to_problem(instance="/api/chains/vocal")
    assert problem.errors == exc.errors and problem.status == 422
    assert "steps[0].params.room_size" in problem.detail

    with pytest.raises(ValidationProblem) as info:
        decode_json_body(b'{"name": "v", "steps": [{"effect": "r", "params": {"size": 1}}]}', Chain)
    assert info.value.errors == [FieldProblem("steps[0].params.size", "unknown field")]
    with pytest.raises(ValidationProblem) as info:
        decode_json_body(b'{"steps": []}', Chain)
    assert info.value.errors == [FieldProblem("name", "required field missing")]
    with pytest.raises(ValidationProblem) as info:
        decode_json_body(b"[]", Chain)
    assert info.value.errors == [FieldProblem("", "Expected object, got array")]

    chain = decode_json_body(b'{"name": "v", "steps": [{"effect": "r", "params": {}}]}', Chain)
    assert chain.steps[0].params.room_size == 0.5


def test_invalid_json_is_a_400_saying_where() -> None:
    with pytest.raises(ProblemException) as info:
        decode_json_body(b'{"name": "v",\n "steps": [}', Chain)
    exc = info.value
    assert not isinstance(exc, ValidationProblem)
    assert exc.status == 400 and exc.errors is None
    assert exc.detail.startswith("The request body is not valid JSON: invalid character at line 2, column 12")
    with pytest.raises(ProblemException, match="ends before the JSON value is complete"):
        decode_json_body(b'{"name": ', Chain)
    with pytest.raises(ProblemException, match="body is empty; expected JSON \\(Chain\\)"):
        decode_json_body(b"  ", Chain)


def test_query_decoding(client: TestClient) -> None:
    with pytest.raises(ValidationProblem, match="limit: Expected int") as info:
        decode_query({"limit": "abc"}, AssetQuery)
    assert info.value.errors[0].path == "limit"

    r = client.get("/api/assets", params={"limit": "abc"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["errors"] == [{"path": "limit", "message": "Expected int, got str"}]
    assert body["instance"] == "/api/assets" and body["title"]
    assert "limit: Expected int" in body["detail"]

    assert (
        client.get("/api/assets", params={"limit": "0"}).json()["errors"][0]["message"] == "Expected int >= 1"
    )
    assert client.get("/api/assets", params={"order": "up"}).json()["errors"][0]["path"] == "order"
    assert client.get("/api/assets", params={"nope": "1"}).json()["errors"][0] == {
        "path": "nope",
        "message": "unknown field",
    }
    ok = client.get("/api/assets?limit=1&tag=a&tag=b&prefix=d").json()
    assert ok == {"items": [msgspec.to_builtins(ASSETS[0])], "tag": ["a", "b"]}


def test_problem_encoding_omits_unset_members() -> None:
    problem = ProblemException(404, "no asset 7").to_problem()
    assert msgspec.json.decode(msgspec.json.encode(problem)) == {
        "title": "Not Found",
        "status": 404,
        "detail": "no asset 7",
    }
    assert msgspec.json.decode(msgspec.json.encode(problem), type=Problem).type == "about:blank"


def test_save_chain_end_to_end(client: TestClient) -> None:
    good = {"name": "vocal", "steps": [{"effect": "reverb", "params": {"room_size": 0.9}}]}
    assert client.put("/api/chains/vocal", json=good).json()["steps"][0]["params"]["room_size"] == 0.9
    r = client.put("/api/chains/vocal", content=b"{nope")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


# --------------------------------------------------------------------------- examples, links, components


def test_a_json_body_needs_an_example_that_its_type_accepts() -> None:
    with pytest.raises(ValueError, match=r"PUT /c/\{name\}: a JSON body needs an example"):
        Operation("PUT", "/c/{name}", handler, summary="c", body=Chain)
    with pytest.raises(ValueError, match=r"the example is not a valid Chain: .*\$\.name"):
        Operation("PUT", "/c/{name}", handler, summary="c", body=Chain, example={"name": "", "steps": []})
    with pytest.raises(ValueError, match="no JSON body"):
        Operation("GET", "/c", handler, summary="c", example={"a": 1})
    put = Operation("PUT", "/c", handler, summary="c", body=Chain, example={"name": "a", "steps": []})
    body = openapi_document(Api("t", "1", routes=[put]))["paths"]["/c"]["put"]["requestBody"]
    assert body["content"]["application/json"]["example"] == {"name": "a", "steps": []}


def _create(**kw) -> Operation:
    return Operation(
        "POST",
        "/a",
        handler,
        summary="create",
        operation_id="create",
        responses={201: Asset, 409: Problem},
        **kw,
    )


GET_ONE = Operation("GET", "/a/{asset_id:int}", other, summary="one", responses={200: Asset})


def test_links_are_checked_against_the_operations_they_name() -> None:
    with pytest.raises(ValueError, match="'nothing', which is no operation"):
        Api("t", "1", routes=[_create(links=[Link("nothing")]), GET_ONE])
    with pytest.raises(ValueError, match=r"sets \['nope'\], which are not its parameters"):
        Api("t", "1", routes=[_create(links=[Link("other", {"asset_id": "1", "nope": "2"})]), GET_ONE])
    with pytest.raises(ValueError, match=r"leaves out the path's \['asset_id'\]"):
        Api("t", "1", routes=[_create(links=[Link("other")]), GET_ONE])
    with pytest.raises(ValueError, match="gives a body, which it takes none of"):
        Api("t", "1", routes=[_create(links=[Link("other", {"asset_id": "1"}, request_body={})]), GET_ONE])
    with pytest.raises(ValueError, match="status 200, which is not declared"):
        _create(links=[Link("other", {"asset_id": "1"}, status=200)])
    with pytest.raises(ValueError, match="a link needs a 2xx response"):
        Operation("DELETE", "/a", handler, summary="d", responses={404: Problem}, links=[Link("other")])


def test_links_are_written_on_the_response_they_follow() -> None:
    link = Link("other", {"asset_id": "$response.body#/id"}, description="Read it.")
    doc = openapi_document(Api("t", "1", routes=[_create(links=[link]), GET_ONE]))
    validate(doc)
    responses = doc["paths"]["/a"]["post"]["responses"]
    assert responses["201"]["links"] == {
        "other": {
            "operationId": "other",
            "parameters": {"asset_id": "$response.body#/id"},
            "description": "Read it.",
        }
    }
    assert "links" not in responses["409"]


Name = component(str, "Name")


class Named(msgspec.Struct):
    name: Annotated[Name, msgspec.Meta(description="Whose name")]
    other: Name | None = None


def test_components_are_filled_in_by_the_server_that_serves_the_document() -> None:
    op = Operation("PUT", "/n", handler, summary="n", body=Named, example={"name": "a"})
    api = Api("t", "1", routes=[op])
    plain = openapi_document(api)
    validate(plain)
    schemas = plain["components"]["schemas"]
    assert schemas["Name"] == {"type": "string"}
    # The use keeps what it says of the value; the component holds the type.
    assert schemas["Named"]["properties"]["name"] == {
        "$ref": "#/components/schemas/Name",
        "description": "Whose name",
    }
    served = openapi_document(api, schemas={"Name": {"enum": ["a", "b"]}})
    validate(served)
    assert served["components"]["schemas"]["Name"] == {"enum": ["a", "b"]}
    assert openapi_document(api, schemas={"Name": {"enum": ["a", "b"]}}) is served  # built once
    assert openapi_document(api)["components"]["schemas"]["Name"] == {"type": "string"}
    with pytest.raises(KeyError, match="'Gone', which none defines"):
        openapi_document(api, schemas={"Name": {"$ref": "#/components/schemas/Gone"}})


# --------------------------------------------------------------------------- fxhost's own API


def test_every_route_on_one_thing_is_reached_by_a_link() -> None:
    """A route on one asset, chain, stream or render can only be reached by a client (or a
    fuzzer) that knows where the id comes from: a link from the operation that made it."""
    from fxhost.api.app import API

    targets = {link.operation_id for op in API.operations for link in op.links}
    # GET /api/effects/{name}: an effect is installed, not made; its name is an enum.
    unreached = {op.operation_id for op in API.operations if op.path_params} - targets - {"get_effect"}
    assert not unreached
    bodies = [op.operation_id for op in API.operations if op.body is not None]
    assert bodies and all(API.operation(name).example is not None for name in bodies)


class _Counted(msgspec.Struct, forbid_unknown_fields=True):
    frames: Annotated[int, msgspec.Meta(ge=1)]
    gain: float = 1.0
    nested: list[dict[str, int]] = []


def test_a_json_number_without_a_fraction_is_an_integer_as_json_schema_says() -> None:
    """JSON Schema's ``integer`` accepts ``600.0`` (a fuzzer found the 422), and so do we;
    a fraction, or a float where no number fits, is still refused naming the field."""
    body = decode_json_body(b'{"frames": 600.0, "gain": 2, "nested": [{"a": 3.0}]}', _Counted)
    assert body == _Counted(frames=600, gain=2.0, nested=[{"a": 3}])
    assert type(body.frames) is int and type(body.nested[0]["a"]) is int
    with pytest.raises(ValidationProblem) as info:
        decode_json_body(b'{"frames": 600.5}', _Counted)
    assert info.value.errors == [FieldProblem("frames", "Expected int, got float")]
    with pytest.raises(ValidationProblem) as info:
        decode_json_body(b'{"frames": 0.0}', _Counted)
    assert info.value.errors == [FieldProblem("frames", "Expected int, got float")]
