#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests of database outputs.
#
#   eval "$(bash scripts/pg-test-cluster.sh start)"   # prints export lines
#   cargo test --test it db_postgres::
#   bash scripts/pg-test-cluster.sh stop "$LEADS_TEST_PG_DIR"
#
# `start` installs the `postgresql` Debian package if it is missing (as
# root, with apt-get), creates a cluster in a new temporary directory with
# `initdb` (as the `postgres` user when run as root: initdb refuses root),
# listening on 127.0.0.1 at a free private port and on a private socket
# directory, and prints:
#   LEADS_TEST_PG       postgres://leads_test@127.0.0.1:PORT/leads_test
#   LEADS_TEST_PG_PASSWORD  the test role's password (TCP needs it)
#   LEADS_TEST_PG_SOCKET    the socket directory (trusted, no password)
#   LEADS_TEST_PG_CA    a CA certificate the server's TLS certificate (for
#                       localhost and 127.0.0.1) is signed by; TLS is on
#                       when openssl is there to make them
#   LEADS_TEST_PG_DIR   the cluster directory, for `stop`
#   LEADS_REQUIRE_PG=1  so the tests fail, rather than skip, without it
# `stop DIR` stops the cluster and removes DIR.
set -euo pipefail

log() { echo "pg-test-cluster: $*" >&2; }

find_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # From /: the postgres user may not be allowed into the checkout.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

free_port() {
  local port
  for port in $(seq 54329 54429); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  log "no free port in 54329-54429"
  exit 1
}

start() {
  local bin
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      log "PostgreSQL is not installed; as root: apt-get install postgresql"
      exit 1
    fi
    log "installing postgresql"
    # Only the binaries are wanted: no system-wide "main" cluster started on
    # port 5432 by the package's install script.
    mkdir -p /etc/postgresql-common
    if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
      echo "create_main_cluster = false" >>/etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >&2
    bin=$(find_bin)
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi

  local dir port password
  dir=$(mktemp -d /tmp/leads-pg.XXXXXX)
  chmod 755 "$dir"
  mkdir -p "$dir/data" "$dir/socket"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$dir"
  fi
  port=$(free_port)
  password="leads-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/socket'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
  local ca=""
  if command -v openssl >/dev/null 2>&1; then
    # A private CA and a server certificate signed by it, so the tests can
    # show that TLS is verified (trusted with sslrootcert, refused without).
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=leads test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$dir/data/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/data/server.crt" >/dev/null 2>&1
    chmod 600 "$dir/data/server.key"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir/data/server.key" "$dir/data/server.crt"
    fi
    echo "ssl = on" >>"$dir/data/postgresql.conf"
    ca="$dir/ca.pem"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2 || {
    cat "$dir/server.log" >&2
    exit 1
  }
  as_owner "$bin/psql" -h "$dir/socket" -p "$port" -U postgres -d postgres -qAt \
    -v ON_ERROR_STOP=1 >&2 <<EOF
CREATE ROLE leads_test LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE leads_test OWNER leads_test;
EOF
  log "cluster in $dir, port $port"
  echo "export LEADS_TEST_PG='postgres://leads_test@127.0.0.1:$port/leads_test'"
  echo "export LEADS_TEST_PG_PASSWORD='$password'"
  echo "export LEADS_TEST_PG_SOCKET='$dir/socket'"
  [ -z "$ca" ] || echo "export LEADS_TEST_PG_CA='$ca'"
  echo "export LEADS_TEST_PG_DIR='$dir'"
  echo "export LEADS_REQUIRE_PG=1"
}

stop() {
  local dir=${1:?usage: pg-test-cluster.sh stop DIR}
  local bin
  bin=$(find_bin)
  case "$dir" in
    /tmp/leads-pg.*) ;;
    *) log "refusing to remove $dir (not a cluster made by start)"; exit 1 ;;
  esac
  if [ -f "$dir/data/postmaster.pid" ] && [ -n "$bin" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
