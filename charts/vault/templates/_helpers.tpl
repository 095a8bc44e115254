{{/* Short name of the chart's objects: "vault" unless nameOverride. */}}
{{- define "vault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: fullnameOverride, else the release name. */}}
{{- define "vault.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vault.namespace" -}}
{{- default .Release.Namespace .Values.global.namespace -}}
{{- end -}}

{{- define "vault.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vault.scheme" -}}
{{- if eq (toString .Values.global.tlsDisable) "true" }}http{{ else }}https{{ end -}}
{{- end -}}

{{/* "true" when the server is rendered: server.enabled, or "-" and global.enabled; never with
an external Vault. */}}
{{- define "vault.serverEnabled" -}}
{{- $on := .Values.server.enabled -}}
{{- if eq (toString $on) "-" }}{{ $on = .Values.global.enabled }}{{ end -}}
{{- if and (eq (toString $on) "true") (not .Values.global.externalVaultAddr) }}true{{ end -}}
{{- end -}}

{{- define "vault.injectorEnabled" -}}
{{- $on := .Values.injector.enabled -}}
{{- if eq (toString $on) "-" }}{{ $on = .Values.global.enabled }}{{ end -}}
{{- if eq (toString $on) "true" }}true{{ end -}}
{{- end -}}

{{/* image reference from a map with repository, tag and optional digest. */}}
{{- define "vault.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (required "an image tag or digest is required" .tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "vault.labels" -}}
helm.sh/chart: {{ include "vault.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vaultctl
{{- end -}}

{{- define "vault.server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
component: server
{{- end -}}

{{- define "vault.injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vault.name" . }}-agent-injector
app.kubernetes.io/instance: {{ .Release.Name }}
component: webhook
{{- end -}}

{{- define "vault.serviceAccountName" -}}
{{- default (include "vault.fullname" .) .Values.server.serviceAccount.name -}}
{{- end -}}

{{/* A value that is YAML text (rendered with tpl) or a structure. */}}
{{- define "vault.tplOrYaml" -}}
{{- if kindIs "string" .value -}}
{{- tpl .value .context | trim -}}
{{- else -}}
{{- toYaml .value -}}
{{- end -}}
{{- end -}}

{{/* The address agents and the injector use to reach Vault. */}}
{{- define "vault.address" -}}
{{- if .Values.global.externalVaultAddr -}}
{{- .Values.global.externalVaultAddr -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%v" (include "vault.scheme" .) (include "vault.fullname" .) (include "vault.namespace" .) .Values.server.service.port -}}
{{- end -}}
{{- end -}}

{{/* PodDisruptionBudget maxUnavailable: explicit, else what keeps a Raft quorum. */}}
{{- define "vault.pdb.maxUnavailable" -}}
{{- if kindIs "invalid" .Values.server.ha.disruptionBudget.maxUnavailable -}}
{{- max 1 (div (sub (int .Values.server.ha.replicas) 1) 2) -}}
{{- else -}}
{{- .Values.server.ha.disruptionBudget.maxUnavailable -}}
{{- end -}}
{{- end -}}

{{/* One volume claim template. */}}
{{- define "vault.claim" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: {{ .name }}
  spec:
    accessModes:
      - {{ .storage.accessMode | default "ReadWriteOnce" }}
    {{- if .storage.storageClass }}
    storageClassName: {{ .storage.storageClass | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .storage.size | quote }}
{{- end -}}

{{/* API and cluster ports of a server Service. */}}
{{- define "vault.server.ports" -}}
- name: {{ .scheme }}
  port: {{ .port }}
  targetPort: {{ .targetPort }}
- name: https-internal
  port: 8201
  targetPort: 8201
{{- end -}}

{{/* Name of a cluster-scoped object: the plain name when the namespace is the base name (the
usual "vault" in "vault"), else suffixed with the namespace, so installs in two namespaces of one
cluster do not fight over the same ClusterRoleBinding or webhook. */}}
{{- define "vault.clusterName" -}}
{{- $ns := include "vault.namespace" .ctx -}}
{{- if eq $ns (include "vault.fullname" .ctx) -}}
{{- .name -}}
{{- else -}}
{{- printf "%s-%s" .name $ns -}}
{{- end -}}
{{- end -}}

{{- define "vault.injector.webhookName" -}}
{{- include "vault.clusterName" (dict "name" (printf "%s-agent-injector-cfg" (include "vault.fullname" .)) "ctx" .) -}}
{{- end -}}
