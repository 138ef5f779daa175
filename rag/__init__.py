"""RAG pipelines (graph-RAG, chunk-KV cache reuse) build on lamina.retrieval; see DESIGN.md."""
