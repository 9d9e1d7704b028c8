{{/* Values the schema cannot judge alone (they relate two values): fail with the fix. */}}
{{- define "e2b.validate" -}}
{{- $t := .Values.kafka.topics -}}
{{- if gt (int .Values.projector.replicas) (int $t.lifecyclePartitions) -}}
{{- fail (printf "projector.replicas (%d) exceeds kafka.topics.lifecyclePartitions (%d): a projector beyond one per partition would own no partition and sit idle" (int .Values.projector.replicas) (int $t.lifecyclePartitions)) -}}
{{- end -}}
{{- if gt (int .Values.actuator.replicas) (int $t.commandsPartitions) -}}
{{- fail (printf "actuator.replicas (%d) exceeds kafka.topics.commandsPartitions (%d)" (int .Values.actuator.replicas) (int $t.commandsPartitions)) -}}
{{- end -}}
{{- range $name, $c := fromYaml (include "e2b.components" .) -}}
{{- $v := index $.Values $c.values -}}
{{- $b := $v.podDisruptionBudget -}}
{{- if and $b.enabled (kindIs "invalid" $b.minAvailable) (kindIs "invalid" $b.maxUnavailable) -}}
{{- fail (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable" $c.values) -}}
{{- end -}}
{{- if and $c.consumes $v.keda.enabled -}}
{{- $partitions := int (index $t $c.consumes.partitions) -}}
{{- if gt (int $v.keda.maxReplicaCount) $partitions -}}
{{- fail (printf "%s.keda.maxReplicaCount (%d) exceeds kafka.topics.%s (%d): a consumer beyond one per partition would own no partition and sit idle" $c.values (int $v.keda.maxReplicaCount) $c.consumes.partitions $partitions) -}}
{{- end -}}
{{- $max := int (include "e2b.kedaMax" (dict "root" $ "v" $v "c" $c)) -}}
{{- if gt (int $v.keda.minReplicaCount) $max -}}
{{- fail (printf "%s.keda.minReplicaCount (%d) exceeds its maxReplicaCount (%d)" $c.values (int $v.keda.minReplicaCount) $max) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if gt (int $t.minInsyncReplicas) (int $t.replicationFactor) -}}
{{- fail "kafka.topics.minInsyncReplicas exceeds kafka.topics.replicationFactor: every acks=all write would fail" -}}
{{- end -}}
{{- if not (or .Values.postgresql.url .Values.postgresql.existingSecret) -}}
{{- fail "set postgresql.url or postgresql.existingSecret (the projector's DATABASE_URL)" -}}
{{- end -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "set redis.url or redis.existingSecret (REDIS_URL)" -}}
{{- end -}}
{{- $s := .Values.secrets -}}
{{- if not (or $s.existingSecret (and $s.e2bWebhookSecret $s.e2bApiKey $s.statusApiJwtSecret)) -}}
{{- fail "set secrets.existingSecret (keys E2B_WEBHOOK_SECRET, E2B_API_KEY, STATUS_API_JWT_SECRET), or all three secrets.* values for a dev cluster" -}}
{{- end -}}
{{- end -}}
