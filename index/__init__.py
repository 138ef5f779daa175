"""The ground floor: the data model, the RocksDB store and the index data structures.

Nothing here knows about queries, encoders or gRPC (see ARCHITECTURE.md).
"""
