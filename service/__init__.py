"""gRPC service: servicer, server, auth, status mapping and client."""
