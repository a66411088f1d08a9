"""The validator service: consumes task streams, queries and scores miners (docs/validator.md)."""
