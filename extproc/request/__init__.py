"""The request path: parse a chat completion, classify it, pick route, cohort and backend."""
