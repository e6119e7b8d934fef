#!/bin/sh
# The image's HEALTHCHECK: one image, three roles; the check follows what the container runs (PID 1).
# The Dagster checks import Dagster (a second of CPU): a success is trusted for a minute.
stamp=/tmp/.b2cal-healthy
if [ -n "$(find "$stamp" -mmin -1 2>/dev/null)" ]; then exit 0; fi
cmd="$(tr '\0' ' ' < /proc/1/cmdline)"
case "$cmd" in
    *"api grpc"*) dagster api grpc-health-check -p 4000 >/dev/null ;;
    *dagster-daemon*) dagster-daemon liveness-check >/dev/null ;;
    *"b2cal web"*) exec curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:3000/healthz ;;
    *) exit 0 ;;  # a one-off (the migration, a run worker): nothing to serve
esac || exit 1
touch "$stamp"
