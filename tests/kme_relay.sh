# The peer protocol across three KMEs (tests/kme_relay.py has the oracles).
exec python3 "$(dirname "$0")/kme_relay.py" "${1:-build/kagi}"
