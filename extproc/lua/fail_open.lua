
-- switchyard's fail-open rewrite for one backend (extproc.envoy_config fills the {{...}}
-- values per fail-open route). Runs only on a request switchyard did not route (down or
-- late): the body still names the client's model, which this backend may not serve. Sets
-- the top-level "model" to the backend's, and its path prefix and query, as switchyard
-- would have (extproc.request.adapt).
function envoy_on_request(handle)
  local prefix, query = "{{path_prefix}}", "{{query}}"
  if prefix ~= "" or query ~= "" then
    set_path(handle:headers(), "", "", prefix, query)
  end
  -- Last: reading the body suspends the script (header objects taken before are stale).
  set_model(handle, "{{model}}")
end
