{{/* Values the schema cannot judge alone (they relate two values): fail with the fix. */}}
{{- define "e2b.validate" -}}
{{- $t := .Values.kafka.topics -}}
{{- if gt (int .Values.projector.replicas) (int $t.lifecyclePartitions) -}}
{{- fail (printf "projector.replicas (%d) exceeds kafka.topics.lifecyclePartitions (%d): a projector beyond one per partition would own no partition and sit idle" (int .Values.projector.replicas) (int $t.lifecyclePartitions)) -}}
{{- end -}}
{{- if gt (int .Values.actuator.replicas) (int $t.commandsPartitions) -}}
{{- fail (printf "actuator.replicas (%d) exceeds kafka.topics.commandsPartitions (%d)" (int .Values.actuator.replicas) (int $t.commandsPartitions)) -}}
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
