"""Encoders: text to dense, sparse and token vectors (no model downloads at run time)."""
