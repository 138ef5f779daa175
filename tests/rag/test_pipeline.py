import pytest
from lamina.index.errors import InvalidArgument
from lamina.rag import Pipeline, PromptBuilder
from lamina.rag.pipeline import MAX_QUESTION_CHARS, CitationsEvent, DoneEvent, TokenEvent
from lamina.rag.postprocess import MMR, ContextBudget, DedupeByParent
from lamina.retrieval.query import SearchRequest

from tests.rag.conftest import PASSAGES, DownGenerator, EchoGenerator, WordCounter


def test_a_run_answers_from_the_best_chunk_with_citations_and_timings(passages):
    generator = EchoGenerator()
    result = passages.as_pipeline(generator=generator, search={"mode": "dense", "k": 3}).run("wing lift stall")
    hits = passages.search("wing lift stall", k=3)
    assert [c.chunk_id for c in result.citations] == [h.id for h in hits]
    assert result.answer == hits[0].text  # the echo generator repeats passage [1]
    assert [p.chunk_id for p in generator.prompts[0].parts if p.chunk_id] == [h.id for h in hits]
    assert all(PASSAGES[h.id] in result.context for h in hits)
    assert result.error is None and result.stats == {"kv_hits": 0}
    assert {"retrieve_ms", "postprocess_ms", "assemble_ms", "generate_ms", "ttft_ms", "total_ms"} <= set(result.timings)


def test_no_generator_returns_the_context_and_citations(passages):
    result = Pipeline(passages, counter=WordCounter(), search={"k": 2}).run("shock wave pressure")
    assert result.answer == "" and result.error is None and len(result.citations) == 2
    assert "generate_ms" not in result.timings and "Question: shock wave pressure" in result.context


def test_the_context_holds_the_same_chunks_as_the_search_when_the_budget_allows(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"mode": "hybrid", "k": 5})
    request = SearchRequest.simple("flow wing", 5, mode="hybrid")
    assert [c.id for c in pipeline.run("flow wing").chunks] == [h.id for h in passages.query(request).hits]


def test_a_small_budget_keeps_the_best_chunks_that_fit(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"mode": "dense", "k": 5},
                        postprocessors=[ContextBudget(20, overhead=0)])
    chunks = pipeline.run("wing").chunks
    assert sum(len(c.text.split()) for c in chunks) <= 20 and chunks


def test_a_failed_generator_still_returns_the_context_and_names_the_error(passages):
    pipeline = passages.as_pipeline(generator=DownGenerator(), search={"k": 2})
    result = pipeline.run("heat transfer")
    assert "refused the connection" in result.error and len(result.citations) == 2 and result.context
    events = list(pipeline.events("heat transfer"))
    assert isinstance(events[0], CitationsEvent) and [e.text for e in events[1:-1]] == ["The"]
    done = events[-1].result
    assert "closed the stream" in done.error and done.answer == "The" and len(done.citations) == 2


def test_stream_yields_the_same_answer_as_run_and_events_come_in_order(passages):
    pipeline = passages.as_pipeline(generator=EchoGenerator(), search={"k": 3})
    answer = pipeline.run("supersonic shock").answer
    assert "".join(pipeline.stream("supersonic shock")) == answer
    events = list(pipeline.events("supersonic shock"))
    assert isinstance(events[0], CitationsEvent) and isinstance(events[-1], DoneEvent)
    assert all(isinstance(e, TokenEvent) for e in events[1:-1]) and events[-1].result.answer == answer
    assert events[-1].result.stats == {"kv_hits": 0}  # the Generation the stream returned


def test_tenant_and_filter_restrict_what_reaches_the_prompt(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"k": 5})
    assert {c.chunk_id for c in pipeline.run("list sort", tenant="acme").citations} <= set(PASSAGES) - {"sort"}
    assert [c.chunk_id for c in pipeline.run("list sort", tenant="globex").citations] == ["sort"]


def test_mmr_fetches_vectors_and_explain_shows_every_stage(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"mode": "dense", "k": 4},
                        postprocessors=[DedupeByParent(), MMR(0.5, top_n=2)])
    result = pipeline.run("wing", explain=True)
    assert len(result.chunks) == 2
    assert [s["kind"] for s in result.explain["postprocess"]] == ["dedupe_by_parent", "mmr"]
    assert result.explain["postprocess"][1] == {"kind": "mmr", "in": 4, "out": 2}
    assert result.explain["retrieve"]["stages"][0]["kind"] == "dense"
    assert result.explain["assemble"]["chunks"] == [c.id for c in result.chunks]


def test_the_wiring_round_trips_through_a_dict(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"mode": "dense", "k": 4},
                        postprocessors=[DedupeByParent(1), ContextBudget(64)],
                        builder=PromptBuilder("{{ question }}{% for c in chunks %}|{{ c.text }}{% endfor %}"),
                        max_new_tokens=32)
    data = pipeline.to_dict()
    again = Pipeline.from_dict(data, passages, counter=WordCounter())
    assert again.to_dict() == data
    assert again.run("wing").context == pipeline.run("wing").context


def test_bad_input_is_named(passages):
    pipeline = Pipeline(passages, counter=WordCounter())
    with pytest.raises(InvalidArgument, match="question is empty"):
        pipeline.run("  ")
    with pytest.raises(InvalidArgument, match=f"limit is {MAX_QUESTION_CHARS:,}"):
        pipeline.run("x" * (MAX_QUESTION_CHARS + 1))
    with pytest.raises(InvalidArgument, match="unknown search option.*topk"):
        Pipeline(passages, counter=WordCounter(), search={"topk": 3})
    with pytest.raises(InvalidArgument, match="unknown search mode"):
        Pipeline(passages, counter=WordCounter(), search={"mode": "fuzzy"})
    with pytest.raises(InvalidArgument, match="max_new_tokens"):
        Pipeline(passages, counter=WordCounter(), max_new_tokens=0)


def test_the_real_local_generator_runs_in_the_pipeline(passages, tiny_llama):
    from lamina.rag.generators.local import LocalGenerator

    pipeline = passages.as_pipeline(generator=LocalGenerator(str(tiny_llama), max_new_tokens=6), search={"k": 2},
                                    max_new_tokens=6)
    result = pipeline.run("wing lift")
    assert result.error is None and result.answer and len(result.citations) == 2
    assert result.stats["prefiller"] == "full" and result.stats["tokens_computed"] > 0
    streamed = list(pipeline.events("wing lift"))[-1].result
    assert streamed.answer == result.answer and streamed.stats["prefiller"] == "full"
    assert {"ttft_ms", "prefill_ms", "generate_ms"} <= set(streamed.timings)


def test_facets_answer_counting_questions_exactly_under_the_pipeline_s_tenant(rag_db):
    coll = rag_db.create_collection("f", encoder="hashing", payload={"topic": "keyword", "year": "numeric"})
    rows = [{"id": str(i), "text": f"doc {i}", "tenant": "acme" if i % 3 else "globex",
             "metadata": {"topic": ["aero", "heat", "flow"][i % 3], "year": 1950 + i}} for i in range(30)]
    coll.upsert(rows, wait=True)
    pipeline = Pipeline(coll, counter=WordCounter(), search={"tenant": "acme"})
    counts = pipeline.facet("topic")
    brute = {}
    for r in rows:
        if r["tenant"] == "acme":
            brute[r["metadata"]["topic"]] = brute.get(r["metadata"]["topic"], 0) + 1
    assert {c["value"]: c["count"] for c in counts["counts"]} == brute
    years = pipeline.facet("year", bins=3)
    acme_years = [r["metadata"]["year"] for r in rows if r["tenant"] == "acme"]
    assert years["stats"]["min"] == min(acme_years) and years["stats"]["max"] == max(acme_years)
    assert "error" in pipeline.facet("colour")
