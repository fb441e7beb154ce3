"""One router per concern; `api.app.create_app` mounts them all.

Ids in their paths (`{doc_id:any_id}`, `{item_id:any_id}`) take any text: a bucket key or a
golden item id may hold "/" (sent as a path or URL-encoded) and newlines, where Starlette's
default stops at "/" and its `path` (`.*`) at a newline, so an id the API listed could not be
sent back. The convertor is registered here, before any router module builds its routes.
"""

from starlette.convertors import PathConvertor, register_url_convertor


class AnyIdConvertor(PathConvertor):
    """The rest of the path, slashes and newlines included."""

    regex = "(?s:.+)"


register_url_convertor("any_id", AnyIdConvertor())
