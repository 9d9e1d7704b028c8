"""The adaptive idle rule's learner: on ADAPTIVE_IDLE_SCHEDULE, the ticker replica holding its
lease recomputes the idle timeout of every project whose policy is adaptive, from that
project's history in PostgreSQL, and publishes what it learned as an amendment of the policy
(a policy fact: replay rebuilds it, the projector applies it to live deadlines)."""
