"""Lamina: retrieval and vector search."""
