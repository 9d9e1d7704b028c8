"""The enforcer: three parts (ticker/, actuator/, reconciler/) over a shared, pure domain
(domain/), each with its use cases, adapters and composition root."""
