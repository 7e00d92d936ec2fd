# test/lib.sh - shared by test/run-all.sh, test/demo.sh and bench/*.sh.
#
# Installs what tsnap needs on Debian 12, builds and installs it, and starts
# throwaway servers: a PostgreSQL 15 cluster with tsnap preloaded and a Ceph
# RADOS Gateway, both on 127.0.0.1 and free ports, with all state under one
# work directory.  Everything started here is recorded and stopped by
# tsnap_cleanup (install it as an EXIT trap), by its pid files, never by
# process name.
#
# PostgreSQL refuses to run as root, so when run as root the servers, the
# tests and the benchmarks run as the "postgres" system user, on a copy of
# the source tree that user owns.

set -euo pipefail

TSNAP_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PG_CONFIG=${PG_CONFIG:-$PG_BIN/pg_config}

TSNAP_DEBS=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libssl-dev
	libxml2-dev zlib1g-dev libzstd-dev libdeflate-dev libipc-run-perl make gcc pkg-config
	ceph-mon ceph-osd radosgw ceph-common curl gzip zstd libarchive-zip-perl iproute2 procps
	awscli)

log() { printf '== %s\n' "$*" >&2; }

# Install the Debian packages that are missing (needs root when any are).
tsnap_install_deps() {
	local missing=() p
	for p in "${TSNAP_DEBS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || { echo "missing packages: ${missing[*]} (run as root to install them)" >&2; exit 1; }
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Debian's postgresql-common creates and starts a default cluster; we
	# never use it, and it would hold port 5432.
	if command -v pg_lsclusters >/dev/null; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
			pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
		done
	fi
}

# The user that runs PostgreSQL, the tests and the benchmarks.
tsnap_run_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

# as_pg CMD...: run a command as that user, keeping the environment.
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"; else PATH="$PG_BIN:$PATH" "$@"; fi
}

# Make a work directory for this run: $TSNAP_WORK (owned by the run user).
tsnap_make_workdir() {
	TSNAP_WORK=$(mktemp -d "${TMPDIR:-/tmp}/tsnap-${1:-run}.XXXXXX")
	chmod 755 "$TSNAP_WORK"
	[ "$(id -u)" = 0 ] && chown postgres: "$TSNAP_WORK"
	export TSNAP_WORK
}

# Build and install the extension from a copy of the tree in the work dir
# (so a root-owned checkout is never written to by the test user).
tsnap_build_install() {
	log "building tsnap"
	mkdir -p "$TSNAP_WORK/src"
	tar -C "$TSNAP_SRC" --exclude=.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
		--exclude=results --exclude=tmp_check -cf - . | tar -C "$TSNAP_WORK/src" -xf -
	[ "$(id -u)" = 0 ] && chown -R postgres: "$TSNAP_WORK/src"
	as_pg make -s -C "$TSNAP_WORK/src" PG_CONFIG="$PG_CONFIG" >"$TSNAP_WORK/build.log" 2>&1 ||
		{ cat "$TSNAP_WORK/build.log"; exit 1; }
	if [ "$(id -u)" = 0 ]; then
		make -s -C "$TSNAP_WORK/src" PG_CONFIG="$PG_CONFIG" install >>"$TSNAP_WORK/build.log" 2>&1
	else
		make -s -C "$TSNAP_WORK/src" PG_CONFIG="$PG_CONFIG" install >>"$TSNAP_WORK/build.log" 2>&1 ||
			{ echo "make install failed; run as root or install tsnap first" >&2; cat "$TSNAP_WORK/build.log"; exit 1; }
	fi
}

# tsnap_pick_port VAR: set VAR to a TCP port nobody listens on, below the
# kernel's ephemeral range (so no outgoing connection can take it between
# this check and the bind), and not picked before in this run.
# TSNAP_PORTS=LOW-HIGH picks from that range instead, for developers who
# share a machine and have a range each.
TSNAP_PORTS_GIVEN=" "
tsnap_pick_port() {
	local p low high
	low=20000
	high=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	if [ -n "${TSNAP_PORTS:-}" ]; then
		low=${TSNAP_PORTS%-*}
		high=$((${TSNAP_PORTS#*-} + 1))
	fi
	while :; do
		p=$((low + RANDOM % (high - low)))
		case "$TSNAP_PORTS_GIVEN" in *" $p "*) continue ;; esac
		ss -ltnH "sport = :$p" | grep -q . && continue
		TSNAP_PORTS_GIVEN="$TSNAP_PORTS_GIVEN$p "
		printf -v "$1" '%s' "$p"
		return
	done
}

# Start the local S3 server: sets S3_ENDPOINT, S3_REGION, S3_BUCKET,
# S3_ACCESS, S3_SECRET (exported for the tests).
tsnap_start_rgw() {
	export RGWLAB_DIR=$TSNAP_WORK/rgw
	tsnap_pick_port RGW_PORT
	tsnap_pick_port MON_PORT
	tsnap_pick_port MON_V1_PORT
	export RGW_PORT MON_PORT MON_V1_PORT
	export S3_ACCESS=${S3_ACCESS:-TSNAPACCESSKEY} S3_SECRET=${S3_SECRET:-TSNAPSECRETKEY0123456789}
	export S3_BUCKET=${S3_BUCKET:-tsnap} S3_REGION=us-east-1
	export S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
	log "starting Ceph RGW on $S3_ENDPOINT"
	TSNAP_RGW_STARTED=1
	"$TSNAP_SRC/test/rgw/start-rgw.sh" >"$TSNAP_WORK/rgw-start.log" 2>&1 ||
		{ cat "$TSNAP_WORK/rgw-start.log"; exit 1; }
}

# postgresql.conf lines that point tsnap at the local S3 server.
tsnap_s3_conf() {
	cat <<EOF
tsnap.s3_endpoint = '$S3_ENDPOINT'
tsnap.s3_region = '$S3_REGION'
tsnap.s3_bucket = '$S3_BUCKET'
tsnap.s3_access_key_id = '$S3_ACCESS'
tsnap.s3_secret_access_key = '$S3_SECRET'
tsnap.s3_url_style = 'path'
EOF
}

# Start a throwaway cluster with tsnap preloaded: sets PGHOST, PGPORT,
# PGDATA (exported).  $1, if given, holds extra postgresql.conf lines.
tsnap_start_cluster() {
	tsnap_pick_port PGPORT
	export PGDATA=$TSNAP_WORK/pgdata PGHOST=$TSNAP_WORK PGPORT
	export PGUSER=$(tsnap_run_user) PGDATABASE=postgres
	log "starting PostgreSQL on port $PGPORT"
	as_pg initdb -D "$PGDATA" -A trust -U "$PGUSER" >"$TSNAP_WORK/initdb.log" 2>&1 ||
		{ cat "$TSNAP_WORK/initdb.log"; exit 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PGPORT"
		echo "unix_socket_directories = '$TSNAP_WORK'"
		echo "shared_preload_libraries = 'tsnap'"
		echo "max_prepared_transactions = 10"
		echo "tsnap.keep_for = 0"
		echo "fsync = on"
		if [ -n "${S3_ENDPOINT:-}" ]; then tsnap_s3_conf; fi
		if [ -n "${1:-}" ]; then printf '%s\n' "$1"; fi
	} | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
	TSNAP_PG_STARTED=1
	as_pg pg_ctl -D "$PGDATA" -l "$TSNAP_WORK/postgres.log" -w start >/dev/null ||
		{ cat "$TSNAP_WORK/postgres.log"; exit 1; }
}

# Stop what this run started; safe to call more than once.
tsnap_cleanup() {
	local rc=$?
	set +e
	if [ -n "${TSNAP_PG_STARTED:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
		as_pg pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
	fi
	TSNAP_PG_STARTED=
	if [ -n "${TSNAP_RGW_STARTED:-}" ]; then
		"$TSNAP_SRC/test/rgw/stop-rgw.sh" --kill >/dev/null 2>&1
	fi
	TSNAP_RGW_STARTED=
	if [ -n "${TSNAP_WORK:-}" ] && [ -z "${TSNAP_KEEP:-}" ]; then
		rm -rf "$TSNAP_WORK"
	fi
	return $rc
}
