"""Query-time composition: encoders, Collection, fusion, rerank."""
