{{/*
The switchyard container, the rest of a list item after its name: a native
sidecar in sidecar mode, the only container in extproc-only mode.
*/}}
{{- define "switchyard.container" -}}
{{- $ := .ctx -}}
{{- $sidecar := include "switchyard.sidecar" $ -}}
image: {{ include "switchyard.image" $ }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
command: ["switchyard"]
args: ["serve", "-c", {{ .configFile | quote }}]
{{- with $.Values.extraEnv }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
ports:
  - {name: metrics, containerPort: {{ $.Values.ports.metrics }}, protocol: TCP}
  {{- if not $sidecar }}
  - {name: grpc, containerPort: {{ $.Values.ports.grpc }}, protocol: TCP}
  {{- end }}
# The model loads before the servers start.
startupProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 2
  failureThreshold: 60
{{- if $sidecar }}
readinessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 5
  failureThreshold: 2
{{- else }}
# gRPC health turns NOT_SERVING when shutdown begins (server.drain_s).
readinessProbe:
  grpc: {port: {{ $.Values.ports.grpc }}, service: envoy.service.ext_proc.v3.ExternalProcessor}
  periodSeconds: 5
  failureThreshold: 1
{{- end }}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
  failureThreshold: 3
securityContext:
  {{- toYaml $.Values.securityContext | nindent 2 }}
resources:
  {{- toYaml $.Values.resources | nindent 2 }}
volumeMounts:
  - {name: config, mountPath: {{ include "switchyard.configDir" $ }}, readOnly: true}
  - {name: tmp, mountPath: /tmp}
  {{- if .unix }}
  - {name: socket, mountPath: {{ include "switchyard.socketDir" $ }}}
  {{- end }}
{{- end -}}
