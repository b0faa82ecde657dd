"""The async gRPC front door: auth, validation, catalog, fan-out, merge, cache."""
