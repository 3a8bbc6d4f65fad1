# End-to-end test of kagi testbed: four KMEs from examples/testbed.yaml,
# ETSI GS QKD 014 over mutual TLS (tests/testbed_e2e.py has the oracles).
exec python3 "$(dirname "$0")/testbed_e2e.py" "${1:-build/kagi}"
