"""The wire contract: generated messages and stubs, proto <-> domain conversions, and the
mapping of the contract's errors to gRPC statuses (the edge; `simsearch.contract` has the
errors themselves)."""
