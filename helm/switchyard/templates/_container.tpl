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
{{- $tls := include "switchyard.extProcTLS" $ -}}
{{- $state := (include "switchyard.config" $ | fromYaml).state }}
env:
  # A replica's id in the fleet's rollout state: the pod's name and a random suffix.
  - name: POD_NAME
    valueFrom:
      fieldRef: {fieldPath: metadata.name}
  {{- if $state.password_env }}
  - name: {{ $state.password_env }}
    valueFrom:
      secretKeyRef:
        name: {{ include "switchyard.redisPasswordSecret" $ }}
        key: {{ include "switchyard.redisPasswordKey" $ }}
  {{- end }}
  {{- if $.Values.adminToken.secretName }}
  - name: {{ include "switchyard.adminTokenEnv" $ }}
    valueFrom:
      secretKeyRef: {name: {{ $.Values.adminToken.secretName }}, key: {{ $.Values.adminToken.key }}}
  {{- end }}
  {{- with $.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - {name: metrics, containerPort: {{ $.Values.ports.metrics }}, protocol: TCP}
  {{- range $i := untilStep 1 (int (include "switchyard.workers" $)) 1 }}
  - {name: metrics-w{{ $i }}, containerPort: {{ add $.Values.ports.metrics $i }}, protocol: TCP}
  {{- end }}
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
{{- else if $tls }}
# The kubelet's gRPC probe speaks no TLS; /healthz turns 503 when draining begins too.
readinessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 5
  failureThreshold: 1
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
  {{- if $tls }}
  - {name: tls, mountPath: {{ include "switchyard.tlsDir" $ }}, readOnly: true}
  {{- end }}
  {{- if $.Values.auth.enabled }}
  - {name: client-keys, mountPath: {{ include "switchyard.authDir" $ }}, readOnly: true}
  {{- end }}
{{- end -}}
