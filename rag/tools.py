"""Tools a generator may call for corpus-level questions that retrieval cannot answer.

GlobalRAG (Luo et al., 2025) shows RAG failing at counting, extremes and top-k over a whole
corpus: a model that reads ten retrieved chunks cannot say how many documents have a topic, or
which year is the latest. A facet answers those exactly (`Collection.facet`). The tool is a
pure function over anything with that method (`Faceted`: an in-process `Collection` or a
`RemoteCollection`, e.g. `Client.collection(name)`), and `describe` states it in the OpenAI
tool shape (`{"type": "function", "function": {"name", "description", "parameters"}}`) so that
a generator that speaks tool calls can call it with JSON arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lamina.index.errors import InvalidArgument, NotFound
from lamina.index.facets import MAX_BINS, MAX_FACET_LIMIT, FacetResult
from lamina.index.filters import Filter

FACET_TOOL = "facet"
_OPTIONS = ("kind", "limit", "bins", "filter", "tenant")


@runtime_checkable
class Faceted(Protocol):
    """What the facet tool needs: `Collection.facet`'s signature."""

    def facet(self, field: str, *, kind: str | None = None, limit: int = 10,
              bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
              tenant: str | None = None) -> FacetResult: ...


def facet_tool(collection_or_client: Faceted | Any, field: str, *, collection: str | None = None,
               **options: Any) -> dict[str, Any]:
    """The facet of `field` as a JSON-able dict (`FacetResult.to_dict`), or `{"error": message}`
    when the arguments are bad (an unknown option, an undeclared field, a bad filter, an unknown
    collection): the generator's mistake is told back to it rather than raised, so that it can
    call again. `collection_or_client` is a `Faceted` (Collection, RemoteCollection), or, with
    `collection` naming one, anything whose `.collection(name)` returns one (Client, Database).

    `options`: kind, limit, bins (a count or a list of edges), filter (the JSON filter form),
    tenant. A tenant given by the pipeline (a caller bound to a tenant) must be passed here, not
    left to the model's arguments.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    try:
        if unknown:
            raise InvalidArgument(f"unknown facet option(s) {', '.join(unknown)}; expected some of "
                                  f"{', '.join(_OPTIONS)}")
        target = collection_or_client if collection is None else collection_or_client.collection(collection)
        result = target.facet(field, **options)
    except (InvalidArgument, NotFound) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return result.to_dict()


def call_facet_tool(collection_or_client: Faceted | Any, arguments: str | Mapping[str, Any], *,
                    collection: str | None = None, tenant: str | None = None) -> dict[str, Any]:
    """Run a model's tool call: `arguments` as the model sent them (a JSON object or its text),
    against `collection_or_client` (and `collection`) as `facet_tool`.
    `tenant`, when given, overrides whatever tenant the arguments name (the model's arguments never
    widen what the caller may see)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            return {"error": f"InvalidArgument: the tool arguments are not JSON: {exc}"}
    if not isinstance(arguments, Mapping) or not isinstance(arguments.get("field"), str):
        return {"error": "InvalidArgument: the tool arguments must be a JSON object with a string 'field'"}
    options = {k: v for k, v in arguments.items() if k != "field"}
    if "collection" in options:  # the pipeline picks the collection, never the model
        return {"error": "InvalidArgument: unknown facet option collection"}
    if tenant is not None:
        options["tenant"] = tenant
    return facet_tool(collection_or_client, arguments["field"], collection=collection, **options)


def describe(fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The facet tool in the OpenAI tool shape. `fields` (a collection's `config.payload`: field ->
    "keyword" | "numeric") become the `field` parameter's enum and are named in the description."""
    field_schema: dict[str, Any] = {"type": "string", "description": "The payload field to aggregate."}
    description = ("Count documents exactly over the whole collection, instead of reading retrieved passages: "
                   "for a keyword field, the most frequent values with their document counts; for a numeric "
                   "field, its minimum, maximum and a histogram. Use it for questions about how many, which "
                   "is most common, the earliest, latest, largest or smallest. An optional filter restricts the "
                   "documents counted.")
    if fields:
        field_schema["enum"] = sorted(fields)
        description += " Fields: " + ", ".join(f"{k} ({v})" for k, v in sorted(fields.items())) + "."
    return {
        "type": "function",
        "function": {
            "name": FACET_TOOL,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    "field": field_schema,
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_FACET_LIMIT,
                              "description": "Keyword fields: how many of the most frequent values (default 10)."},
                    "bins": {"description": "Numeric fields: a histogram, as a number of equal-width bins or a list "
                                            "of increasing edges.",
                             "oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_BINS},
                                       {"type": "array", "items": {"type": "number"}, "minItems": 2}]},
                    "filter": {"type": "object",
                               "description": 'A metadata filter, e.g. {"must": [{"key": "year", "range": '
                                              '{"gte": 1990}}, {"key": "lang", "match": {"value": "en"}}]}.'},
                },
                "required": ["field"],
                "additionalProperties": False,
            },
        },
    }
