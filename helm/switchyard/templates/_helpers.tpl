{{/* Names and labels. */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ ternary "router" "ext-proc" (eq .Values.mode "sidecar") }}
{{- end -}}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.sidecar" -}}
{{- if eq .Values.mode "sidecar" }}true{{ end -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "switchyard.configDir" -}}/etc/switchyard{{- end -}}
{{- define "switchyard.authDir" -}}/etc/switchyard-auth{{- end -}}

{{/* The Secret holding the client keys file: the operator's, or the chart's own. */}}
{{- define "switchyard.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-client-keys" (include "switchyard.fullname" .)) -}}
{{- end -}}
{{- define "switchyard.envoyDir" -}}/etc/envoy{{- end -}}
{{- define "switchyard.socketDir" -}}/run/switchyard{{- end -}}
{{- define "switchyard.tlsDir" -}}/etc/switchyard-tls{{- end -}}

{{/* Mutual TLS on the ext_proc port: extproc-only mode with extProcTLS.secretName. */}}
{{- define "switchyard.extProcTLS" -}}
{{- if .Values.extProcTLS.secretName -}}
{{- if include "switchyard.sidecar" . -}}
{{- fail "extProcTLS.secretName: only with mode: extproc-only (in sidecar mode ext_proc never leaves the pod)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The environment variable that carries the admin token (config.server.admin_token_env). */}}
{{- define "switchyard.adminTokenEnv" -}}
{{- $server := .Values.config.server | default dict -}}
{{- if not $server.admin_token_env -}}
{{- fail "config.server.admin_token_env: the chart passes adminToken's Secret in as this variable; set it" -}}
{{- end -}}
{{- $server.admin_token_env -}}
{{- end -}}

{{/* switchyard's processes per pod (config.server.workers, docs/WORKERS.md): worker i
serves ext_proc and /metrics on the ports after worker 0's. Sidecar mode only: the Envoy
switchyard renders lists every worker, a gateway's EnvoyExtensionPolicy one Service port. */}}
{{- define "switchyard.workers" -}}
{{- $workers := int ((.Values.config.server | default dict).workers | default 1) -}}
{{- if and (gt $workers 1) (not (include "switchyard.sidecar" .)) -}}
{{- fail "config.server.workers: more than 1 only with mode: sidecar (the pod's own Envoy spreads streams over the workers; a gateway's EnvoyExtensionPolicy reaches one port)" -}}
{{- end -}}
{{- $workers -}}
{{- end -}}

{{/* Where switchyard serves ext_proc, given the mode and the transport. */}}
{{- define "switchyard.listen" -}}
{{- if not (include "switchyard.sidecar" .) -}}
{{- printf "0.0.0.0:%d" (int .Values.ports.grpc) -}}
{{- else if eq .Values.extProcTransport "unix" -}}
{{- printf "unix:%s/extproc.sock" (include "switchyard.socketDir" .) -}}
{{- else -}}
{{- printf "127.0.0.1:%d" (int .Values.ports.grpc) -}}
{{- end -}}
{{- end -}}

{{/*
The switchyard config as the pod sees it: .Values.config plus the addresses
that depend on the pod layout. Fails, naming the key, on what the schema cannot
check: keys the chart owns, and names that must refer to something.
*/}}
{{- define "switchyard.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $server := $cfg.server | default dict -}}
{{- $envoy := $cfg.envoy | default dict -}}
{{- $owned := list (list "server" $server "listen") (list "server" $server "metrics_listen") (list "server" $server "tls") -}}
{{- range list "listen" "admin" "stats_listen" "processor" "processor_tls" "xds" -}}
{{- if or (include "switchyard.sidecar" $) (eq . "xds") -}}
{{- $owned = append $owned (list "envoy" $envoy .) -}}
{{- end -}}
{{- end -}}
{{- range $owned -}}
{{- if hasKey (index . 1) (index . 2) -}}
{{- fail (printf "config.%s.%s: set by the chart from ports and mode; remove it from your values" (index . 0) (index . 2)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $server "listen" (include "switchyard.listen" .) -}}
{{- $_ := set $server "metrics_listen" (printf "0.0.0.0:%d" (int .Values.ports.metrics)) -}}
{{- if include "switchyard.extProcTLS" . -}}
{{- $dir := include "switchyard.tlsDir" . -}}
{{- $_ := set $server "tls" (dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) "client_ca_file" (printf "%s/ca.crt" $dir)) -}}
{{- end -}}
{{- $_ := set $cfg "server" $server -}}
{{- if include "switchyard.sidecar" . -}}
{{- $_ := set $envoy "listen" (printf "0.0.0.0:%d" (int .Values.ports.http)) -}}
{{- /* The admin can stop Envoy: loopback only. Prometheus and probes use the stats port. */ -}}
{{- $_ := set $envoy "admin" (printf "127.0.0.1:%d" (int .Values.ports.admin)) -}}
{{- $_ := set $envoy "stats_listen" (printf "0.0.0.0:%d" (int .Values.ports.stats)) -}}
{{- else -}}
{{- /* extproc-only: the gateway owns Envoy's routes; switchyard refuses reloads that would
disagree with them (envoy.xds in extproc/config/server.py). */ -}}
{{- $_ := set $envoy "xds" false -}}
{{- end -}}
{{- $_ := set $cfg "envoy" $envoy -}}
{{- if .Values.auth.enabled -}}
{{- if not (include "switchyard.sidecar" .) -}}
{{- fail "auth.enabled: only with mode: sidecar (the key check runs in the Envoy switchyard configures; in extproc-only mode your gateway authenticates clients)" -}}
{{- end -}}
{{- if hasKey $cfg "auth" -}}
{{- fail "config.auth: set by the chart from auth; remove it from your values" -}}
{{- end -}}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.keys) -}}
{{- fail "auth.enabled: expected auth.existingSecret or auth.keys (lines `<name> <sha256 hex>`, see switchyard keys add)" -}}
{{- end -}}
{{- $_ := set $cfg "auth" (dict "keys_file" (printf "%s/%s" (include "switchyard.authDir" .) .Values.auth.key)) -}}
{{- end -}}
{{- $_ := set $cfg "state" (include "switchyard.state" (dict "ctx" . "cfg" $cfg) | fromYaml) -}}
{{- include "switchyard.checkReferences" $cfg -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
config.state as the pod sees it: the in-release Redis when redis.enabled, the
password variable when a Secret holds it. Fails when replicas would each keep
their own rollout state.
*/}}
{{- define "switchyard.state" -}}
{{- $ := .ctx -}}
{{- $state := deepCopy (.cfg.state | default dict) -}}
{{- if $.Values.redis.enabled -}}
{{- if and (hasKey $state "store") (ne $state.store "redis") -}}
{{- fail "config.state.store: redis.enabled runs a Redis for the rollout state; set config.state.store to redis or leave it out" -}}
{{- end -}}
{{- if hasKey $state "redis_url" -}}
{{- fail "config.state.redis_url: set by the chart when redis.enabled; remove it, or turn redis.enabled off to use your own Redis" -}}
{{- end -}}
{{- $_ := set $state "store" "redis" -}}
{{- $_ := set $state "redis_url" (printf "redis://%s-redis:6379/0" (include "switchyard.fullname" $)) -}}
{{- end -}}
{{- if or $.Values.redis.enabled $.Values.stateStore.passwordSecret.name -}}
{{- $_ := set $state "password_env" ($state.password_env | default "SWITCHYARD_REDIS_PASSWORD") -}}
{{- end -}}
{{- $canaries := list -}}
{{- range .cfg.routes | default list -}}
{{- if .canary }}{{ $canaries = append $canaries .name }}{{ end -}}
{{- end -}}
{{- $replicas := "" -}}
{{- if $.Values.autoscaling.enabled -}}
{{- $replicas = "autoscaling.enabled is true" -}}
{{- else if gt (int $.Values.replicaCount) 1 -}}
{{- $replicas = printf "replicaCount is %d" (int $.Values.replicaCount) -}}
{{- end -}}
{{- $workers := int ((.cfg.server | default dict).workers | default 1) -}}
{{- if and (gt $workers 1) (ne ($state.store | default "memory") "redis") -}}
{{- fail (printf "config.server.workers: %d workers each keep the rollout state as a member of the fleet: set config.state.store: redis with config.state.redis_url (or redis.enabled: true), or workers: 1" $workers) -}}
{{- end -}}
{{- if and $canaries $replicas (ne ($state.store | default "memory") "redis") -}}
{{- fail (printf "config.state.store: routes %s have a canary and %s, but the rollout state is kept in each replica's memory: replicas would disagree and a restarted pod would re-open a rolled-back canary. Set config.state.store: redis with config.state.redis_url (or redis.enabled: true), or run one replica" (join ", " $canaries) $replicas) -}}
{{- end -}}
{{- toYaml $state -}}
{{- end -}}

{{- define "switchyard.redisPasswordSecret" -}}
{{- if $.Values.stateStore.passwordSecret.name -}}
{{- $.Values.stateStore.passwordSecret.name -}}
{{- else -}}
{{- printf "%s-redis" (include "switchyard.fullname" $) -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.checkReferences" -}}
{{- $backends := list -}}
{{- range $i, $b := .backends | default list -}}
{{- if has $b.name $backends -}}
{{- fail (printf "config.backends[%d].name: duplicate name %q" $i $b.name) -}}
{{- end -}}
{{- $backends = append $backends $b.name -}}
{{- end -}}
{{- $routes := list -}}
{{- range $r, $route := .routes | default list -}}
{{- if has $route.name $routes -}}
{{- fail (printf "config.routes[%d].name: duplicate name %q" $r $route.name) -}}
{{- end -}}
{{- $routes = append $routes $route.name -}}
{{- range $b, $weighted := $route.backends | default list -}}
{{- if not (has $weighted.backend $backends) -}}
{{- fail (printf "config.routes[%d].backends[%d].backend: unknown backend %q; expected one of config.backends[].name: %s" $r $b $weighted.backend (join ", " $backends)) -}}
{{- end -}}
{{- end -}}
{{- if $route.canary -}}
{{- if not (has $route.canary.backend $backends) -}}
{{- fail (printf "config.routes[%d].canary.backend: unknown backend %q; expected one of config.backends[].name: %s" $r $route.canary.backend (join ", " $backends)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $routes -}}
{{- fail "config.routes: expected at least one route (and config.default_route naming one)" -}}
{{- end -}}
{{- if not (has .default_route $routes) -}}
{{- fail (printf "config.default_route: unknown route %q; expected one of config.routes[].name: %s" (toString .default_route) (join ", " $routes)) -}}
{{- end -}}
{{- end -}}

{{/*
The parts of the config that Envoy's bootstrap is rendered from (its static part: see
extproc/envoy_config/startup.py), or that switchyard reads only at start (server, state): a change
to them needs new pods. Everything else (labels, routes, backends, weights, canaries,
shadows, caches, the classifier, the session) switchyard hot-reloads from the mounted
ConfigMap and serves to Envoy over xDS, so it must not be part of this checksum.
*/}}
{{- define "switchyard.restartChecksum" -}}
{{- $cfg := include "switchyard.config" . | fromYaml -}}
{{- $analysis := $cfg.analysis | default dict -}}
{{- $parts := dict "server" $cfg.server "envoy" $cfg.envoy "state" $cfg.state "analysis" (pick $analysis "source" "interval_s") -}}
{{- if not (include "switchyard.sidecar" .) -}}
{{- $parts = dict "server" $cfg.server "state" $cfg.state -}}
{{- end -}}
{{- $parts | toJson | sha256sum -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: Envoy's drain (sidecar mode), then switchyard's
drain_s and grace_s (it stops after Envoy, as a native sidecar), plus a margin.
*/}}
{{- define "switchyard.terminationGrace" -}}
{{- $server := .Values.config.server | default dict -}}
{{- range list "drain_s" "grace_s" -}}
{{- if not (hasKey $server .) -}}
{{- fail (printf "config.server.%s: the chart needs it to size terminationGracePeriodSeconds; set it" .) -}}
{{- end -}}
{{- end -}}
{{- $total := addf $server.drain_s $server.grace_s 5 -}}
{{- if include "switchyard.sidecar" . -}}
{{- $total = addf $total .Values.proxy.drainSeconds -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "switchyard.redisPasswordKey" -}}
{{- if .Values.stateStore.passwordSecret.name -}}
{{- .Values.stateStore.passwordSecret.key -}}
{{- else -}}
password
{{- end -}}
{{- end -}}

{{/* Envoy's image: an exact tag, and the digest when one is given. */}}
{{- define "switchyard.proxyImage" -}}
{{- $image := .Values.proxy.image -}}
{{- printf "%s:%s" $image.repository $image.tag -}}
{{- with $image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/*
topologySpreadConstraints: the values' list, else, with two replicas or more, one
that spreads the pods over nodes without ever blocking scheduling.
*/}}
{{- define "switchyard.topologySpread" -}}
{{- if .Values.topologySpreadConstraints -}}
{{- toYaml .Values.topologySpreadConstraints -}}
{{- else if or .Values.autoscaling.enabled (ge (int .Values.replicaCount) 2) -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "switchyard.selectorLabels" . | nindent 6 }}
{{- else -}}
[]
{{- end -}}
{{- end -}}
