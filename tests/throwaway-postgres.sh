# Sourced by tests/run and bench/*: starts a throwaway Postgres cluster on a free
# loopback port, exports NOMOS_TEST_DATABASE_URL (superuser, trust auth) and
# stops and deletes the cluster when the calling shell exits. Installs the
# postgresql package with apt-get when no server binaries are present (as root).
# Expects the caller to define step() and apt_install().

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$pgbin" ]; then
  apt_install postgresql
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
pgroot=$(mktemp -d /tmp/nomos-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$pgroot"
  as_pg=(runuser -u postgres --)
fi
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
stop_throwaway_postgres() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgroot/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgroot"
}
trap stop_throwaway_postgres EXIT
step "throwaway Postgres $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport ($pgroot)"
"${as_pg[@]}" "$pgbin/initdb" -D "$pgroot/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgroot/data" -l "$pgroot/log" -w -o \
  "-c listen_addresses=127.0.0.1 -p $pgport -k $pgroot ${NOMOS_PG_OPTIONS--c fsync=off -c synchronous_commit=off} -c max_connections=300" \
  start >/dev/null
export NOMOS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/postgres"
# Tests that stop and restart a Postgres server run one of their own from here.
export NOMOS_TEST_PG_BIN="$pgbin"
