{{/*
Object-name prefix: the release name (so release "bac" gives bac-gateway, bac-odoo, ...,
the names of k8s/), or fullnameOverride.
*/}}
{{- define "bac.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The binary (and app.kubernetes.io/name) of a service key. */}}
{{- define "bac.binary" -}}
{{- $m := dict "gateway" "bac-gateway" "googleWorkspace" "bac-google-workspace" "odoo" "bac-odoo" "zoho" "bac-zoho" "tally" "bac-tally" "messaging" "bac-messaging" -}}
{{- required (printf "unknown service %q" .) (get $m .) -}}
{{- end -}}

{{/* Object name of a service: dict "root" $ "key" <service key>. */}}
{{- define "bac.name" -}}
{{- printf "%s-%s" (include "bac.fullname" .root) (include "bac.binary" .key | trimPrefix "bac-") -}}
{{- end -}}

{{- define "bac.component" -}}
{{- if eq . "gateway" -}}gateway{{- else -}}integration{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "bac.commonLabels" -}}
app.kubernetes.io/part-of: bac-platform
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of a service's objects: dict "root" $ "key" <service key>. */}}
{{- define "bac.labels" -}}
app.kubernetes.io/name: {{ include "bac.binary" .key }}
app.kubernetes.io/component: {{ include "bac.component" .key }}
{{ include "bac.commonLabels" .root }}
{{- end -}}

{{/* Pod selector of a service: dict "root" $ "key" <service key>. */}}
{{- define "bac.selector" -}}
app.kubernetes.io/name: {{ include "bac.binary" .key }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: bac-platform
{{- end -}}

{{/* Selector of every pod of this release's fleet. */}}
{{- define "bac.fleetSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: bac-platform
{{- end -}}

{{/* Name of a service's Secret: dict "root" $ "key" <service key> "svc" <values>. */}}
{{- define "bac.secretName" -}}
{{- if .svc.existingSecret -}}
{{- .svc.existingSecret -}}
{{- else -}}
{{- .root.Values.secrets.nameTemplate | replace "{service}" (include "bac.name" (dict "root" .root "key" .key)) -}}
{{- end -}}
{{- end -}}

{{/* Image reference of a service: dict "root" $ "svc" <values>. */}}
{{- define "bac.image" -}}
{{- $img := merge (dict) (.svc.image | default dict) .root.Values.image -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
