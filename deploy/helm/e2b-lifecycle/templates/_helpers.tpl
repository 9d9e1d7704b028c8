{{/* Names, labels, images and the shared pieces of every pod. */}}

{{- define "e2b.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "e2b.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "ingest") */}}
{{- define "e2b.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The components: how each is started, where it listens, which secrets and stores it
reads (each gets only those). ticker and actuator are two commands of the enforcer image.
A consumer names the topic and group (and the setting that renames the group) its lag is read
from; `e2b` marks those that call E2B and so get a call budget. */}}
{{- define "e2b.components" -}}
ingest:
  values: ingest
  image: ingest
  command: sandbox-ingest
  port: 8080
  hostVar: INGEST_HOST
  portVar: INGEST_PORT
  secrets: [E2B_WEBHOOK_SECRET]
  optionalSecrets: [E2B_WEBHOOK_SECRETS]
  stores: [redis]
  public: true
status-api:
  values: statusApi
  image: status-api
  command: sandbox-status-api
  port: 8081
  hostVar: STATUS_API_HOST
  portVar: STATUS_API_PORT
  secrets: [STATUS_API_JWT_SECRET]
  stores: [postgresql, redis]
  public: true
projector:
  values: projector
  image: projector
  command: sandbox-projector
  port: 8082
  hostVar: PROJECTOR_HOST
  portVar: PROJECTOR_PORT
  secrets: []
  stores: [postgresql, redis]
  public: false
  consumes: {topic: sandbox-lifecycle, group: sandbox-projector, groupVar: PROJECTOR_GROUP_ID, partitions: lifecyclePartitions}
enforcer:
  values: enforcer
  image: enforcer
  command: sandbox-enforcer
  port: 8083
  hostVar: ENFORCER_HOST
  portVar: ENFORCER_PORT
  secrets: [E2B_API_KEY]
  stores: [postgresql, redis]
  public: false
  e2b: true
actuator:
  values: actuator
  image: enforcer
  command: sandbox-actuator
  port: 8084
  hostVar: ACTUATOR_HOST
  portVar: ACTUATOR_PORT
  secrets: [E2B_API_KEY]
  stores: [redis]
  public: false
  e2b: true
  consumes: {topic: sandbox-commands, group: sandbox-actuator, groupVar: ACTUATOR_GROUP_ID, partitions: commandsPartitions}
{{- end -}}

{{/* Who sets a component's replica count: "hpa", "keda" or "" (the chart, from replicas).
(dict "v" <the component's values>) */}}
{{- define "e2b.scaler" -}}
{{- if and .v.autoscaling .v.autoscaling.enabled -}}hpa
{{- else if and .v.keda .v.keda.enabled -}}keda
{{- end -}}
{{- end -}}

{{/* The fewest replicas a component runs: what a disruption budget must leave room in. */}}
{{- define "e2b.minReplicas" -}}
{{- $scaler := include "e2b.scaler" . -}}
{{- if eq $scaler "hpa" -}}{{ .v.autoscaling.minReplicas }}
{{- else if eq $scaler "keda" -}}{{ .v.keda.minReplicaCount }}
{{- else -}}{{ .v.replicas }}
{{- end -}}
{{- end -}}

{{/* The most replicas KEDA may run: maxReplicaCount, or (0) the topic's partitions, beyond
which a consumer owns no partition. (dict "root" $ "v" <values> "c" <component>) */}}
{{- define "e2b.kedaMax" -}}
{{- $partitions := int (index .root.Values.kafka.topics .c.consumes.partitions) -}}
{{- default $partitions (int .v.keda.maxReplicaCount) -}}
{{- end -}}

{{/* "true" when a component's budget would allow no voluntary eviction at its fewest replicas
(minAvailable 1 of 1, or a percentage rounding up to all of them): every node drain would wait
on it for ever, so the chart leaves it out. maxUnavailable (which replaces minAvailable when
set) never blocks. */}}
{{- define "e2b.budgetBlocks" -}}
{{- $b := .v.podDisruptionBudget -}}
{{- $n := int (include "e2b.minReplicas" .) -}}
{{- if kindIs "invalid" $b.maxUnavailable -}}
{{- $need := 0 -}}
{{- if and (kindIs "string" $b.minAvailable) (hasSuffix "%" $b.minAvailable) -}}
{{- $need = int (ceil (divf (mulf (float64 (trimSuffix "%" $b.minAvailable)) $n) 100)) -}}
{{- else -}}
{{- $need = int $b.minAvailable -}}
{{- end -}}
{{- if ge $need $n -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "e2b.image" -}}
{{- $i := .root.Values.image -}}
{{- $repo := printf "%s/%s" $i.repositoryPrefix .name -}}
{{- if $i.registry }}{{ $repo = printf "%s/%s" $i.registry $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $i.tag) -}}
{{- end -}}

{{- define "e2b.secretName" -}}
{{- default (printf "%s-secrets" (include "e2b.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "e2b.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "e2b.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* DATABASE_URL / REDIS_URL: a URL from values, or a key of an existing Secret.
(dict "store" .Values.postgresql "var" "DATABASE_URL") */}}
{{- define "e2b.storeEnv" -}}
- name: {{ .var }}
{{- if .store.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .store.existingSecret }}
      key: {{ .store.existingSecretKey }}
{{- else }}
  value: {{ .store.url | quote }}
{{- end }}
{{- end -}}

{{- define "e2b.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "e2b.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The one writable place in a read-only root filesystem. */}}
{{- define "e2b.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "e2b.scheduling" -}}
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
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
