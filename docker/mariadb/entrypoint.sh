#!/bin/sh
# First start on an empty data volume: initialise, set the passwords, create the database and user, run
# the init scripts, on a server no one else can reach (no network, its own socket). Then serve.
set -eu
datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
    : "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD}"
    echo "b2cal-mariadb: initialising $datadir"
    mariadb-install-db --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal >/dev/null
    init_sock=/run/mysqld/init.sock
    mariadbd --datadir="$datadir" --skip-networking --socket="$init_sock" &
    pid=$!
    i=0
    until mariadb-admin --socket="$init_sock" -uroot ping >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 60 ] || { echo "b2cal-mariadb: the init server did not start" >&2; exit 1; }
        sleep 1
    done
    quote() { printf "%s" "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
    {
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(quote "$MARIADB_ROOT_PASSWORD")';"
        echo "DELETE FROM mysql.global_priv WHERE User='';"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
        fi
        if [ -n "${MARIADB_USER:-}" ]; then
            echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$(quote "${MARIADB_PASSWORD:?set MARIADB_PASSWORD}")';"
            [ -z "${MARIADB_DATABASE:-}" ] || echo "GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
        fi
        for f in /docker-entrypoint-initdb.d/*.sql; do [ -f "$f" ] && cat "$f"; done
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$init_sock" -uroot
    kill "$pid"
    wait "$pid" || true
    echo "b2cal-mariadb: initialised"
fi
exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 "$@"
