"""Settings shared by every test tier."""

from hypothesis import settings

# Property tests check what is accepted, not how fast: on a loaded 2-core machine (helpers,
# brokers and the connected tier share it) Hypothesis's 200 ms per-example deadline failed a
# test that 20,000 examples later found nothing wrong with. Speed is measured under bench/.
settings.register_profile("project", deadline=None)
settings.load_profile("project")
