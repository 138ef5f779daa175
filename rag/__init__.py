"""RAG on Lamina: ingestion, the query pipeline (retrieve, postprocess, assemble, generate), generators,
graph-RAG and chunk-KV cache reuse, built on `lamina.retrieval`.

    from lamina import Database
    with Database("./my-data") as db:
        docs = db.get_or_create_collection("docs")
        pipeline = docs.as_pipeline(generator="local")
        pipeline.index(["notes/"])
        print(pipeline.run("what is a wing's lift?").answer)
"""

from lamina.rag.assemble import Citation, PromptBuilder
from lamina.rag.pipeline import CitationsEvent, DoneEvent, Pipeline, RagResult, TokenEvent, as_pipeline
from lamina.rag.postprocess import MMR, Candidate, ContextBudget, DedupeByParent, SimilarityCutoff
from lamina.rag.types import Chunk, Generation, Generator, Prompt, PromptPart, SourceDocument
from lamina.retrieval.collection import register_pipeline_factory

register_pipeline_factory(as_pipeline)

__all__ = ["MMR", "Candidate", "Chunk", "Citation", "CitationsEvent", "ContextBudget", "DedupeByParent", "DoneEvent",
           "Generation", "Generator", "Pipeline", "Prompt", "PromptBuilder", "PromptPart", "RagResult",
           "SimilarityCutoff", "SourceDocument", "TokenEvent", "as_pipeline"]
