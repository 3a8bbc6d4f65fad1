# Crash test of kagi kme: SIGKILL during a stream of deliveries (tests/kme_crash.py).
exec python3 "$(dirname "$0")/kme_crash.py" "${1:-build/kagi}"
