
-- The observing filter has read the cache-fill token by now: the client never sees it.
function envoy_on_response(handle)
  handle:headers():remove("{{cache_fill_header}}")
end
