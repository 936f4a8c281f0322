# shellcheck shell=bash
# ---- PostgreSQL for the `postgres` test marker ---------------------------------------------
# Sourced by .ci/run. Installs Debian's `postgresql` package when it is missing, starts a
# throw-away cluster on 127.0.0.1 in a temporary directory (password authentication, so the
# wrong-password test means something), creates a role and a database for the tests and exports
# RECONCILER_TEST_PG_DSN. It never fails the CI run: when anything goes wrong it prints why and
# returns, and the postgres tests skip with that reason instead.
#
# Also usable by hand for local development:
#     source .ci/postgres.sh && .venv/bin/python -m pytest tests/postgres
# and `reconciler_pg_stop` stops the cluster again.

_reconciler_pg_setup() {
    if [ -n "${RECONCILER_TEST_PG_DSN:-}" ]; then
        echo "postgres: using the server in RECONCILER_TEST_PG_DSN"
        return 0
    fi

    local bindir=""
    _reconciler_pg_find_bindir() {
        local d
        for d in /usr/lib/postgresql/*/bin; do
            if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir="$d"; fi
        done
        if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
            d="$(pg_config --bindir)"
            if [ -x "$d/initdb" ]; then bindir="$d"; fi
        fi
    }
    _reconciler_pg_find_bindir

    if [ -z "$bindir" ]; then
        # Installing needs root (or password-less sudo) and apt; without them, skip.
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
                sudo="sudo -n"
            else
                echo "postgres: not installed and no root to install it; postgres tests will skip"
                return 1
            fi
        fi
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "postgres: not installed and no apt-get; postgres tests will skip"
            return 1
        fi
        echo "postgres: installing Debian's postgresql package"
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        # The package's own service start is refused in containers; we start our own cluster.
        if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null 2>&1
        then
            echo "postgres: apt-get install postgresql failed; postgres tests will skip"
            return 1
        fi
        _reconciler_pg_find_bindir
        if [ -z "$bindir" ]; then
            echo "postgres: installed but initdb not found; postgres tests will skip"
            return 1
        fi
    fi

    # initdb refuses to run as root: run the server as the `postgres` system user then.
    local runas=()
    local datadir
    datadir="$(mktemp -d "${TMPDIR:-/tmp}/reconciler-pg.XXXXXX")" || return 1
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "postgres: running as root but no 'postgres' user; postgres tests will skip"
            return 1
        fi
        chown postgres "$datadir"
        runas=(runuser -u postgres --)
    fi

    # A free port, so a developer's own server on 5432 is left alone.
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null)"
    port="${port:-54329}"

    local superpw userpw
    superpw="$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
    userpw="$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$superpw" >"$datadir/.pw"
    [ "${#runas[@]}" -gt 0 ] && chown postgres "$datadir/.pw"
    chmod 600 "$datadir/.pw"

    if ! "${runas[@]}" "$bindir/initdb" -D "$datadir/data" -U postgres --pwfile="$datadir/.pw" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 >"$datadir/initdb.log" 2>&1
    then
        echo "postgres: initdb failed (see $datadir/initdb.log); postgres tests will skip"
        return 1
    fi
    rm -f "$datadir/.pw"
    if ! "${runas[@]}" "$bindir/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir -c max_connections=200" \
        start >/dev/null 2>&1
    then
        echo "postgres: server did not start (see $datadir/server.log); postgres tests will skip"
        return 1
    fi

    if ! PGPASSWORD="$superpw" "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -q \
        -c "CREATE ROLE reconciler LOGIN PASSWORD '$userpw'" \
        -c "CREATE DATABASE reconciler OWNER reconciler" >/dev/null 2>&1
    then
        echo "postgres: could not create the test role/database; postgres tests will skip"
        return 1
    fi

    RECONCILER_PG_DATADIR="$datadir/data"
    RECONCILER_PG_BINDIR="$bindir"
    export RECONCILER_TEST_PG_DSN="postgresql://reconciler:${userpw}@127.0.0.1:${port}/reconciler"
    echo "postgres: test server on 127.0.0.1:$port (data in $datadir)"
    return 0
}

# Stops the cluster this script started (no-op otherwise).
reconciler_pg_stop() {
    if [ -n "${RECONCILER_PG_DATADIR:-}" ]; then
        if [ "$(id -u)" -eq 0 ]; then
            runuser -u postgres -- "$RECONCILER_PG_BINDIR/pg_ctl" -D "$RECONCILER_PG_DATADIR" \
                -m fast stop >/dev/null 2>&1 || true
        else
            "$RECONCILER_PG_BINDIR/pg_ctl" -D "$RECONCILER_PG_DATADIR" -m fast stop \
                >/dev/null 2>&1 || true
        fi
        rm -rf "$(dirname "$RECONCILER_PG_DATADIR")"
        unset RECONCILER_PG_DATADIR
    fi
}

if _reconciler_pg_setup; then
    # Stop the throw-away server when the sourcing shell (the CI run) ends.
    trap reconciler_pg_stop EXIT
fi
true
# ---- end of PostgreSQL set-up ----------------------------------------------------------------
