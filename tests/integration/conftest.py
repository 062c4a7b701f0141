"""Integration fixtures: each real component has its own fixture module, loaded here."""

pytest_plugins = [
    "tests.integration.fixtures_slapd",
    "tests.integration.fixtures_vcsim",
    "tests.integration.fixtures_dns",
    "tests.integration.fixtures_daemon",
    "tests.integration.fixtures_federation",
]
