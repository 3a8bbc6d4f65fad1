# End-to-end test of kagi kme over mutual TLS (tests/kme_e2e.py has the oracles).
exec python3 "$(dirname "$0")/kme_e2e.py" "${1:-build/kagi}"
