

def test_the_stream_returns_its_generation_when_exhausted(tiny_llama):
    from lamina.rag.generators.local import LocalGenerator
    from lamina.rag.types import Prompt, PromptPart

    generator = LocalGenerator(str(tiny_llama), max_new_tokens=5)
    stream = generator.stream(Prompt((PromptPart("wing lift"),)))
    pieces = []
    try:
        while True:
            pieces.append(next(stream))
    except StopIteration as stop:
        generation = stop.value
    assert generation.text == "".join(pieces) and generation.prefill_ms is not None
    assert generation.stats["prefiller"] == "full"
