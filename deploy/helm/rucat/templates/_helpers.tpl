{{/*
Names, labels and the generated config.json. Names are cut to 63 characters
(DNS-1123 labels) because Services and label values must fit.
*/}}

{{- define "rucat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rucat.fullname" -}}
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

{{/* "<fullname>-<suffix>", the suffix always kept whole. */}}
{{- define "rucat.component" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "rucat.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "rucat.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rucat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rucat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rucat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rucat.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "rucat.sqlite" -}}
{{- if eq .Values.database.type "sqlite" -}}true{{- else if eq .Values.database.type "postgres" -}}{{- else -}}
{{- fail (printf "database.type must be sqlite or postgres, not %q" .Values.database.type) -}}
{{- end -}}
{{- end -}}

{{/* The engines' namespace: engines.namespace, default "<release>-engines". */}}
{{- define "rucat.sparkNamespace" -}}
{{- .Values.engines.namespace | default (printf "%s-engines" .Release.Name) -}}
{{- end -}}

{{- define "rucat.serverServiceAccountName" -}}
{{- include "rucat.component" (list . "server") -}}
{{- end -}}

{{- define "rucat.monitorServiceAccountName" -}}
{{- include "rucat.component" (list . "monitor") -}}
{{- end -}}

{{- define "rucat.sparkServiceAccountName" -}}
{{- .Values.spark.serviceAccount.name | default (include "rucat.component" (list . "spark")) -}}
{{- end -}}

{{/* The Secret holding credentials: the user's, or the chart's. */}}
{{- define "rucat.authSecretName" -}}
{{- .Values.auth.existingSecret | default (include "rucat.fullname" .) -}}
{{- end -}}

{{- define "rucat.postgresSecretName" -}}
{{- .Values.database.postgres.existingSecret | default (include "rucat.fullname" .) -}}
{{- end -}}

{{- define "rucat.postgresSecretKey" -}}
{{- if .Values.database.postgres.existingSecret -}}
{{- .Values.database.postgres.existingSecretKey -}}
{{- else -}}
postgres-uri
{{- end -}}
{{- end -}}

{{/* Where both containers find config.json (mounted from the ConfigMap). */}}
{{- define "rucat.configPath" -}}/etc/rucat/config.json{{- end -}}

{{/*
config.json in Rucat's format (src/rucat/config.py). No credential is
written here: auth and the PostgreSQL URI come from the environment (see
rucat.env), which Rucat merges over this file.
*/}}
{{- define "rucat.config" -}}
{{- $db := dict -}}
{{- if include "rucat.sqlite" . -}}
{{- $_ := set $db "Sqlite" (dict "path" "/data/rucat.db") -}}
{{- else -}}
{{- $_ := set $db "Postgres" (dict) -}}
{{- end -}}
{{- $k8s := dict "namespace" (include "rucat.sparkNamespace" .) "service_account" (include "rucat.sparkServiceAccountName" .) "image_pull_policy" .Values.spark.imagePullPolicy "network_policies" .Values.engines.networkPolicy.enabled -}}
{{- with .Values.spark.images -}}
{{- $_ := set $k8s "images" . -}}
{{- end -}}
{{- with .Values.spark.versions -}}
{{- $_ := set $k8s "versions" . -}}
{{- end -}}
{{- /* The REST API answers these Host names only (DNS rebinding): the Service's
names, the loopback names (kubectl port-forward) and server.allowedHosts.
Probes hit /health, which answers whatever the Host. */ -}}
{{- $svc := include "rucat.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.server.clusterDomain) "localhost" "127.0.0.1" "::1" -}}
{{- $hosts = concat $hosts .Values.server.allowedHosts -}}
{{- $cfg := dict "database" $db "platform" (dict "Kubernetes" $k8s) "host" "0.0.0.0" "port" (int .Values.server.port) "connect_port" (int .Values.server.connectPort) "data_dir" "/data" "allowed_hosts" $hosts -}}
{{- if .Values.server.connectTlsSecret -}}
{{- $_ := set $cfg "connect_tls_cert" "/etc/rucat-tls/tls.crt" -}}
{{- $_ := set $cfg "connect_tls_key" "/etc/rucat-tls/tls.key" -}}
{{- end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy .Values.config) -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/*
Environment of a container; args: (list root component). config.py reads
RUCAT_<PATH> with "__" between levels and merges it over config.json. Only
the server gets credentials: the monitor serves nobody.
*/}}
{{- define "rucat.env" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $v := $root.Values -}}
{{- if and $v.auth.enabled (eq $component "server") }}
- name: RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__BEARER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "rucat.authSecretName" $root }}
      key: bearer-token
      {{- if $v.auth.existingSecret }}
      optional: true
      {{- end }}
{{- if $v.auth.username }}
- name: RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__USERNAME
  value: {{ $v.auth.username | quote }}
- name: RUCAT_AUTH_PROVIDER__STATICAUTHPROVIDERCONFIG__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "rucat.authSecretName" $root }}
      key: password
{{- end }}
{{- end }}
{{- if not (include "rucat.sqlite" $root) }}
- name: RUCAT_DATABASE__POSTGRES__URI
  valueFrom:
    secretKeyRef:
      name: {{ include "rucat.postgresSecretName" $root }}
      key: {{ include "rucat.postgresSecretKey" $root }}
{{- end }}
{{- end -}}

{{/* Hardened container defaults; the image's user is uid 10001. */}}
{{- define "rucat.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "rucat.podSecurityContext" -}}
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* One container running `rucat <command>`; args: (list root command resources). */}}
{{- define "rucat.container" -}}
{{- $root := index . 0 -}}
{{- $command := index . 1 -}}
{{- $resources := index . 2 -}}
name: {{ $command }}
image: {{ include "rucat.image" $root | quote }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
args: ["{{ $command }}", "--config-path", "{{ include "rucat.configPath" $root }}"]
{{- with include "rucat.env" (list $root $command) | trim }}
env:
{{- . | nindent 2 }}
{{- end }}
securityContext:
{{- include "rucat.containerSecurityContext" $root | nindent 2 }}
{{- with $resources }}
resources:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "rucat.serverPorts" -}}
ports:
  - name: http
    containerPort: {{ .Values.server.port }}
    protocol: TCP
  - name: spark-connect
    containerPort: {{ .Values.server.connectPort }}
    protocol: TCP
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /health
    port: http
  initialDelaySeconds: 10
  periodSeconds: 20
  failureThreshold: 3
{{- end -}}

{{- define "rucat.volumeMounts" -}}
- name: config
  mountPath: /etc/rucat
  readOnly: true
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "rucat.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod annotations: a change of config or credentials rolls the pods. */}}
{{- define "rucat.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
