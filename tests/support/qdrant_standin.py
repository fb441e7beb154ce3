"""A stand-in for a Qdrant server: qdrant-client's local mode served over Qdrant's REST API.

No Qdrant server binary is installable on the development machines, and local mode
(`QdrantClient(":memory:")`) belongs to the one process that opens it. This process opens it and
answers, over HTTP, the subset of Qdrant's REST API that `core.index.server.ServerIndex` calls
through `QdrantClient(url=...)`, so processes on other (simulated) hosts share one index through
production code unchanged: request bodies are parsed with `qdrant_client.http.models`, handed to
the local client's method of the same name, and answered as a server does
(`{"result": ..., "status": "ok", "time": 0}`). Requests run one at a time, in arrival order
(the handlers are coroutines that never await), as local mode expects.

One difference from a server: local mode refuses an idf corpus on a text query (a server scores
BM25 over the query's tenant alone, `SearchParams.idf`), so the stand-in drops that parameter and
BM25 scores over every tenant's points, as in the rest of the suite's local-mode tests. Local
mode's text index also takes the plain word tokenizer only (tests/support/settings.py).

Run: `python -m tests.support.qdrant_standin HOST PORT`.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from pydantic import BaseModel, TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_DONE = {"operation_id": 0, "status": "completed"}  # an UpdateResult


def _answer(result: Any) -> JSONResponse:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    elif isinstance(result, list):
        result = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
    return JSONResponse({"result": result, "status": "ok", "time": 0})


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"status": {"error": reason}, "time": 0}, status_code=status)


class StandIn:
    """The routes, over one local-mode client."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client

    def routes(self) -> list[Route]:
        handlers: list[tuple[str, str, Callable[..., Any]]] = [
            ("/aliases", "GET", self.aliases),
            ("/collections", "GET", self.collections),
            ("/collections/aliases", "POST", self.change_aliases),
            ("/collections/{name}/exists", "GET", self.exists),
            ("/collections/{name}", "GET", self.collection),
            ("/collections/{name}", "PUT", self.create_collection),
            ("/collections/{name}", "PATCH", self.update_collection),
            ("/collections/{name}", "DELETE", self.delete_collection),
            ("/collections/{name}/index", "PUT", self.create_payload_index),
            ("/collections/{name}/points", "PUT", self.upsert),
            ("/collections/{name}/points", "POST", self.retrieve),
            ("/collections/{name}/points/delete", "POST", self.delete),
            ("/collections/{name}/points/scroll", "POST", self.scroll),
            ("/collections/{name}/points/count", "POST", self.count),
            ("/collections/{name}/points/query/batch", "POST", self.query_batch),
        ]
        routes = [Route(path, _guarded(run), methods=[method]) for path, method, run in handlers]
        return [Route("/", _version, methods=["GET"]), *routes]

    def aliases(self, _: Request, __: Any) -> Any:
        return self._client.get_aliases()

    def collections(self, _: Request, __: Any) -> Any:
        return self._client.get_collections()

    def change_aliases(self, _: Request, body: Any) -> Any:
        operation = qm.ChangeAliasesOperation.model_validate(body)
        return self._client.update_collection_aliases(change_aliases_operations=operation.actions)

    def exists(self, request: Request, _: Any) -> Any:
        return {"exists": self._client.collection_exists(_name(request))}

    def collection(self, request: Request, _: Any) -> Any:
        return self._client.get_collection(_name(request))

    def create_collection(self, request: Request, body: Any) -> Any:
        made = qm.CreateCollection.model_validate(body)
        return self._client.create_collection(
            _name(request),
            vectors_config=made.vectors,
            sparse_vectors_config=made.sparse_vectors,
            metadata=made.metadata,
        )

    def update_collection(self, request: Request, body: Any) -> Any:
        change = qm.UpdateCollection.model_validate(body)
        return self._client.update_collection(_name(request), metadata=change.metadata)

    def delete_collection(self, request: Request, _: Any) -> Any:
        return self._client.delete_collection(_name(request))

    def create_payload_index(self, request: Request, body: Any) -> Any:
        index = qm.CreateFieldIndex.model_validate(body)
        self._client.create_payload_index(_name(request), index.field_name, index.field_schema)
        return _DONE

    def upsert(self, request: Request, body: Any) -> Any:
        points = TypeAdapter(qm.PointInsertOperations).validate_python(body)
        if isinstance(points, qm.PointsList):
            self._client.upsert(_name(request), points.points)
        else:
            self._client.upsert(_name(request), points.batch)
        return _DONE

    def retrieve(self, request: Request, body: Any) -> Any:
        asked = qm.PointRequest.model_validate(body)
        return self._client.retrieve(
            _name(request),
            asked.ids,
            with_payload=asked.with_payload if asked.with_payload is not None else True,
            with_vectors=asked.with_vector or False,
        )

    def delete(self, request: Request, body: Any) -> Any:
        selector = TypeAdapter(qm.PointsSelector).validate_python(body)
        self._client.delete(_name(request), selector)
        return _DONE

    def scroll(self, request: Request, body: Any) -> Any:
        asked = qm.ScrollRequest.model_validate(body)
        points, offset = self._client.scroll(
            _name(request),
            asked.filter,
            limit=asked.limit or 10,
            offset=asked.offset,
            with_payload=asked.with_payload if asked.with_payload is not None else True,
            with_vectors=asked.with_vector or False,
        )
        return {"points": [p.model_dump(mode="json") for p in points], "next_page_offset": offset}

    def count(self, request: Request, body: Any) -> Any:
        asked = qm.CountRequest.model_validate(body)
        return self._client.count(_name(request), asked.filter, exact=asked.exact is not False)

    def query_batch(self, request: Request, body: Any) -> Any:
        batch = qm.QueryRequestBatch.model_validate(body)
        for search in batch.searches:  # local mode refuses an idf corpus: see the docstring
            if search.params is not None and search.params.idf is not None:
                search.params = search.params.model_copy(update={"idf": None})
        return self._client.query_batch_points(_name(request), batch.searches)


def _name(request: Request) -> str:
    return request.path_params["name"]


async def _version(_: Request) -> JSONResponse:
    """What a server answers at its root (unwrapped): the client checks its version there."""
    version = importlib.metadata.version("qdrant-client")
    return JSONResponse({"title": "qdrant-client local mode", "version": version})


def _guarded(
    handler: Callable[[Request, Any], Any],
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Parse the body, run the handler, answer as a server does; a missing collection is a 404,
    any other refusal of local mode a 400 with its reason."""

    async def endpoint(request: Request) -> JSONResponse:
        raw = await request.body()
        body = await request.json() if raw else None
        try:
            return _answer(handler(request, body))
        except ValueError as exc:  # pydantic's ValidationError is one too
            status = 404 if "not found" in str(exc).lower() else 400
            return _refuse(status, str(exc))
        except NotImplementedError as exc:
            return _refuse(400, str(exc))

    return endpoint


def app(client: QdrantClient) -> Starlette:
    return Starlette(routes=StandIn(client).routes())


def main(host: str, port: int) -> None:
    uvicorn.run(app(QdrantClient(":memory:")), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
