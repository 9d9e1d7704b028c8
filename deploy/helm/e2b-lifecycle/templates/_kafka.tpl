{{/* Kafka's TLS and SASL settings, the same in every pod (the components and the init hook). */}}

{{/* The env entries. The password comes from a Secret: yours (sasl.existingSecret) or the
chart's; the init hook runs before the chart's Secret exists, so a dev password is given to it as
a value. (dict "root" $ "hook" false) */}}
{{- define "e2b.kafkaEnv" -}}
{{- $k := .root.Values.kafka.security -}}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $k.protocol | quote }}
{{- if hasPrefix "SASL_" $k.protocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ $k.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
{{- if $k.sasl.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.existingSecretKey }}
{{- else if .hook }}
  value: {{ $k.sasl.password | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "e2b.fullname" .root }}-kafka
      key: KAFKA_SASL_PASSWORD
{{- end }}
{{- end }}
{{- if $k.tls.existingSecret }}
{{- range $var, $key := dict "KAFKA_SSL_CAFILE" $k.tls.caKey "KAFKA_SSL_CERTFILE" $k.tls.certKey "KAFKA_SSL_KEYFILE" $k.tls.keyKey }}
{{- if $key }}
- name: {{ $var }}
  value: /etc/kafka-tls/{{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TLS Secret's volume and mount: empty without one. */}}
{{- define "e2b.kafkaTlsMount" -}}
{{- if .Values.kafka.security.tls.existingSecret -}}
- name: kafka-tls
  mountPath: /etc/kafka-tls
  readOnly: true
{{- end -}}
{{- end -}}

{{- define "e2b.kafkaTlsVolume" -}}
{{- with .Values.kafka.security.tls.existingSecret -}}
- name: kafka-tls
  secret:
    secretName: {{ . }}
{{- end -}}
{{- end -}}

{{/* What the schema cannot judge alone; the services check the same at start. */}}
{{- define "e2b.validateKafka" -}}
{{- $k := .Values.kafka.security -}}
{{- $sasl := hasPrefix "SASL_" $k.protocol -}}
{{- if $sasl -}}
{{- if not (and $k.sasl.mechanism $k.sasl.username (or $k.sasl.existingSecret $k.sasl.password)) -}}
{{- fail (printf "kafka.security.protocol=%s needs kafka.security.sasl.mechanism, .username and .existingSecret (or .password on a dev cluster)" $k.protocol) -}}
{{- end -}}
{{- else if or $k.sasl.mechanism $k.sasl.username $k.sasl.existingSecret $k.sasl.password -}}
{{- fail (printf "kafka.security.sasl is set but kafka.security.protocol=%s uses no SASL (SASL_SSL or SASL_PLAINTEXT)" $k.protocol) -}}
{{- end -}}
{{- if and $k.tls.existingSecret (not (has $k.protocol (list "SSL" "SASL_SSL"))) -}}
{{- fail (printf "kafka.security.tls.existingSecret is set but kafka.security.protocol=%s uses no TLS (SSL or SASL_SSL)" $k.protocol) -}}
{{- end -}}
{{- if and $k.tls.keyKey (not $k.tls.certKey) -}}
{{- fail "kafka.security.tls.keyKey needs kafka.security.tls.certKey (the client certificate)" -}}
{{- end -}}
{{- end -}}
