#!/bin/sh
# The image's HEALTHCHECK: one image, three roles; the check follows what the container runs (PID 1).
cmd="$(tr '\0' ' ' < /proc/1/cmdline)"
case "$cmd" in
    *"api grpc"*) exec dagster api grpc-health-check -p 4000 ;;
    *dagster-daemon*) exec dagster-daemon liveness-check ;;
    *"b2cal web"*) exec curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:3000/healthz ;;
    *) exit 0 ;;  # a one-off (the migration, a run worker): nothing to serve
esac
