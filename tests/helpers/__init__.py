"""Library code the tests share: the rig's description, private services (sshd, registry),
small projects to build, and Pilot helpers for the dashboard. Tests import from here; fixtures
in ``conftest.py`` files only wrap these, so no test imports another test file or a conftest."""
