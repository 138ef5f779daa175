import pytest
from lamina.index.errors import InvalidArgument
from lamina.rag.assemble import PromptBuilder, order_candidates
from lamina.rag.postprocess import Candidate
from lamina.rag.types import Chunk


def cands(n):
    return [Candidate(Chunk(f"d{i}#0", f"passage {i} text", f"d{i}", 0, 0, 14, source=f"d{i}.md"), 1.0 - i / 10)
            for i in range(n)]


def test_parts_rebuild_the_rendered_message_and_name_each_chunk_verbatim():
    assembled = PromptBuilder().build("why?", cands(3))
    chunk_parts = [p for p in assembled.prompt.parts if p.chunk_id is not None]
    assert [(p.chunk_id, p.text) for p in chunk_parts] == [(f"d{i}#0", f"passage {i} text") for i in range(3)]
    assert assembled.context == ("Context:\n[1] passage 0 text\n[2] passage 1 text\n[3] passage 2 text\n\n"
                                 "Question: why?\nAnswer:")
    assert [c.number for c in assembled.citations] == [1, 2, 3]
    assert assembled.citations[1].chunk_id == "d1#0" and assembled.citations[1].source == "d1.md"
    assert assembled.prompt.messages()[0]["role"] == "system"


def test_a_template_may_repeat_and_decorate_chunks():
    builder = PromptBuilder("{% for c in chunks %}<{{ c.source }}>{{ c.text }}</>{% endfor %}{{ question }}"
                            "{{ suffix }}", system=None, variables={"suffix": "!"})
    assembled = builder.build("q", cands(2))
    assert assembled.context == "<d0.md>passage 0 text</><d1.md>passage 1 text</>q!"
    assert assembled.prompt.messages() == [{"role": "user", "content": assembled.context}]


def test_unknown_variables_and_bad_syntax_fail_at_construction():
    with pytest.raises(InvalidArgument, match="unknown variable.*history"):
        PromptBuilder("{{ history }} {{ question }}")
    with pytest.raises(InvalidArgument, match="prompt template line 1"):
        PromptBuilder("{% for c in chunks %}")
    with pytest.raises(InvalidArgument, match="unknown chunk order"):
        PromptBuilder(order="random")


def test_orders():
    five = cands(5)
    assert [c.chunk.id for c in order_candidates(five, "sandwich")] == ["d0#0", "d2#0", "d4#0", "d3#0", "d1#0"]
    shuffled = [five[3], five[0], five[4]]
    assert [c.chunk.id for c in order_candidates(shuffled, "document")] == ["d0#0", "d3#0", "d4#0"]


def test_builder_round_trips_through_a_dict():
    builder = PromptBuilder("{{ question }}{{ x }}", system="s", order="document", variables={"x": 1})
    again = PromptBuilder.from_dict(builder.to_dict())
    assert again.to_dict() == builder.to_dict()
