{{- define "ceo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ceo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ceo.serviceAccountName" -}}
{{- default (include "ceo.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ceo.labels" -}}
app.kubernetes.io/name: {{ include "ceo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ceo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ceo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The `helm test` pod: no app.kubernetes.io/name, so no Service, PodDisruptionBudget or
NetworkPolicy of the operator selects it. */ -}}
{{- define "ceo.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end -}}

{{- /* RUST_LOG for logLevel: at info the kube client stays at warn, as the binary's default. */ -}}
{{- define "ceo.rustLog" -}}
{{- if eq .Values.logLevel "info" -}}info,kube=warn{{- else -}}{{ .Values.logLevel }}{{- end -}}
{{- end -}}
