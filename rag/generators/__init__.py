"""Generators: answer a RAG prompt with a local causal LM, an OpenAI-compatible endpoint, or none."""
