from lamina.rag.types import Chunk, Mark, Prompt, PromptPart, SourceDocument


def test_a_chunk_round_trips_through_its_point():
    chunk = Chunk("a.md#2", "lift of a wing", "a.md", 2, 40, 54, source="docs/a.md", page=3, section="Wings",
                  metadata={"lang": "en"})
    point = chunk.to_point(tenant="acme")
    assert point["tenant"] == "acme" and point["metadata"]["lang"] == "en"
    assert Chunk.from_point(point["id"], point["text"], point["metadata"]) == chunk


def test_a_plain_point_is_a_chunk_of_its_own():
    chunk = Chunk.from_point("7", "heat transfer", {"year": 1958})
    assert (chunk.parent, chunk.position, chunk.start, chunk.end) == ("7", 0, 0, len("heat transfer"))
    assert chunk.metadata == {"year": 1958}


def test_marks_locate_an_offset():
    doc = SourceDocument("d", "x" * 100, marks=[Mark(0, page=1), Mark(50, page=2)])
    assert doc.mark_at(10).page == 1 and doc.mark_at(50).page == 2 and doc.mark_at(99).page == 2
    assert SourceDocument("e", "x").mark_at(0) is None


def test_a_prompt_joins_its_parts_into_chat_messages():
    prompt = Prompt((PromptPart("Context:\n"), PromptPart("[1] wings lift", "c1"), PromptPart("\nQ: why?")),
                    system="Answer from the context.")
    assert prompt.user == "Context:\n[1] wings lift\nQ: why?"
    assert prompt.messages() == [{"role": "system", "content": "Answer from the context."},
                                 {"role": "user", "content": prompt.user}]
