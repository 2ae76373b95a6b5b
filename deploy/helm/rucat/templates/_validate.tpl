{{/*
Refuse values that would install a Rucat that cannot start or loses data,
with a message naming the value. Included once, from configmap.yaml.
*/}}
{{- define "rucat.validate" -}}
{{- $sqlite := include "rucat.sqlite" . -}}
{{- if and $sqlite (ne (int .Values.server.replicas) 1) -}}
{{- fail "server.replicas must be 1 with database.type=sqlite: the SQLite file lives on one ReadWriteOnce volume; use database.type=postgres to scale" -}}
{{- end -}}
{{- if and (not $sqlite) (not .Values.database.postgres.uri) (not .Values.database.postgres.existingSecret) -}}
{{- fail "database.type=postgres needs database.postgres.uri or database.postgres.existingSecret" -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- if and .Values.auth.password (not .Values.auth.username) -}}
{{- fail "auth.password is set but auth.username is empty: set both for HTTP Basic auth" -}}
{{- end -}}
{{- if and .Values.auth.username (not .Values.auth.password) (not .Values.auth.existingSecret) -}}
{{- fail "auth.username is set but auth.password is empty: set auth.password or auth.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- if .Values.spark.namespace -}}
{{- fail "spark.namespace is now engines.namespace" -}}
{{- end -}}
{{- $engines := include "rucat.sparkNamespace" . -}}
{{- if eq $engines .Release.Namespace -}}
{{- fail (printf "engines.namespace must differ from the release namespace %q: engines run user code and must not share a namespace with Rucat's Secret, claim and Service" .Release.Namespace) -}}
{{- end -}}
{{- if or (gt (len $engines) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $engines)) -}}
{{- fail (printf "engines.namespace %q is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)" $engines) -}}
{{- end -}}
{{- if not (has .Values.engines.podSecurity (list "restricted" "baseline" "privileged")) -}}
{{- fail (printf "engines.podSecurity must be restricted, baseline or privileged, not %q" .Values.engines.podSecurity) -}}
{{- end -}}
{{- $port := int .Values.server.port -}}
{{- $connect := int .Values.server.connectPort -}}
{{- if or (lt $port 1) (gt $port 65535) (lt $connect 1) (gt $connect 65535) -}}
{{- fail "server.port and server.connectPort must be between 1 and 65535" -}}
{{- end -}}
{{- if eq $port $connect -}}
{{- fail "server.port and server.connectPort must differ" -}}
{{- end -}}
{{- end -}}
