"""The response side: the observing filter's stream (observe), the one reader of an
OpenAI chat-completion response (reader), what an answer cost (cost), and which
responses Envoy shows switchyard (sampling).

Nothing here imports the rollout, the cache or the request path: they consume what
this package reads, through the small protocols extproc.response.observe names.
"""
