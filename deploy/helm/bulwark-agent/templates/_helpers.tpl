{{/* The objects' name: the release name, with the chart's name unless it already holds it. */}}
{{- define "bulwark-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bulwark-agent.selectorLabels" -}}
app.kubernetes.io/name: bulwark-agent
app.kubernetes.io/instance: {{ include "bulwark-agent.fullname" . }}
{{- end -}}

{{- define "bulwark-agent.labels" -}}
{{ include "bulwark-agent.selectorLabels" . }}
app.kubernetes.io/part-of: bulwark
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret holding the token(s), "" without a server or with service account tokens. */}}
{{- define "bulwark-agent.tokenSecret" -}}
{{- if or (not .Values.server.url) (ne .Values.server.auth "staticTokens") -}}
{{- else if .Values.server.existingSecret -}}
{{- .Values.server.existingSecret -}}
{{- else if or .Values.server.tokens .Values.server.token -}}
{{- include "bulwark-agent.fullname" . }}-token
{{- end -}}
{{- end -}}

{{/* The token file the agent reads, under the Secret's mount. */}}
{{- define "bulwark-agent.tokenFile" -}}
{{- if eq .Values.server.auth "serviceAccountToken" -}}
/etc/bulwark-agent/token/token
{{- else if or .Values.server.tokens (and .Values.server.existingSecret .Values.server.existingSecretPerNode) -}}
/etc/bulwark-agent/token/$(NODE_NAME)
{{- else if .Values.server.existingSecret -}}
/etc/bulwark-agent/token/{{ .Values.server.existingSecretKey }}
{{- else -}}
/etc/bulwark-agent/token/token
{{- end -}}
{{- end -}}

{{/* The agent's config file (flag names as keys, internal/config). */}}
{{- define "bulwark-agent.config" -}}
{{- $c := dict
  "mode" .Values.mode
  "mechanism" .Values.mechanism
  "allow-degrade" .Values.allowDegrade
  "namespaces" (join "," .Values.namespaces)
  "log-level" .Values.logLevel
  "containerd-address" .Values.containerdSocket
  "canary-dir" "/run/bulwark-agent"
  "status-file" "/run/bulwark-agent/status.json"
  "spool-dir" (printf "%s/spool" .Values.stateDir)
  "allowlist-cache-dir" (printf "%s/allowlists" .Values.stateDir)
  "learn-dir" (printf "%s/learned" .Values.stateDir)
  "host-root" (ternary "/host" "" .Values.hostInventory)
  "gate-cgroup" .Values.gateCgroup
-}}
{{- if .Values.modeRules }}{{ $_ := set $c "mode-rules" .Values.modeRules }}{{ end }}
{{- if .Values.server.url }}{{ $_ := set $c "server" .Values.server.url }}{{ end }}
{{- if .Values.metricsPort }}{{ $_ := set $c "metrics-address" (printf "127.0.0.1:%d" (int .Values.metricsPort)) }}{{ end }}
{{- if .Values.workloadAPI.enabled }}{{ $_ := set $c "workload-api-socket" .Values.workloadAPI.socket }}{{ end }}
{{- if .Values.secretVolumes.enabled }}{{ $_ := set $c "secret-volumes" .Values.secretVolumes.dir }}{{ end }}
{{- toYaml (mergeOverwrite $c .Values.extraConfig) }}
{{- end -}}
