{{/* The objects' name: the release name, with the chart's name unless it already holds it. */}}
{{- define "bulwark-admission.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bulwark-admission.selectorLabels" -}}
app.kubernetes.io/name: bulwark-admission
app.kubernetes.io/instance: {{ include "bulwark-admission.fullname" . }}
{{- end -}}

{{- define "bulwark-admission.labels" -}}
{{ include "bulwark-admission.selectorLabels" . }}
app.kubernetes.io/part-of: bulwark
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* A ConfigMap or Secret key for a relative path ("keys/a.pub" -> "keys_a.pub"). */}}
{{- define "bulwark-admission.key" -}}
{{- regexReplaceAll "[^-._a-zA-Z0-9]" (replace "/" "_" .) "_" -}}
{{- end -}}
