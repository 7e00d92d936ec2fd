# Makefile for tsnap (PGXS)
#
# The version lives in tsnap.control alone; META.json and the install script
# name are checked against it by "make check-version" (run by the test suite).
# sql/tsnap--X.Y.Z.sql is the full install script of release X.Y.Z: once
# released it is frozen, and a database on it reaches the next release
# through sql/tsnap--X.Y.Z--<next>.sql.

EXTENSION = tsnap
EXTVERSION = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = tsnap
OBJS = \
	src/tsnap.o \
	src/settings.o \
	src/common/catalog.o \
	src/common/error_transport.o \
	src/common/errors.o \
	src/common/relation_checks.o \
	src/common/run_caught.o \
	src/tracking/bump.o \
	src/tracking/inheritance.o \
	src/tracking/shards.o \
	src/tracking/targets.o \
	src/tracking/tracking.o \
	src/tracking/version.o \
	src/export/compress.o \
	src/export/csv.o \
	src/export/output_settings.o \
	src/export/scan.o \
	src/store/credentials_file.o \
	src/store/store_s3.o \
	src/ledger/checksum.o \
	src/ledger/key.o \
	src/ledger/ledger.o \
	src/ledger/lookup.o \
	src/ledger/manifest.o \
	src/ledger/orphans.o \
	src/ledger/retention.o \
	src/build/build.o \
	src/jobs/history.o \
	src/jobs/jobs_sql.o \
	src/jobs/pool.o \
	src/jobs/queue.o \
	src/jobs/worker.o \
	src/launcher/housekeeper.o \
	src/launcher/launcher.o \
	src/launcher/shared.o \
	src/launcher/steps.o \
	src/launcher/sweeper.o \
	src/snapshot/snapshot.o \
	src/restore/access.o \
	src/restore/history.o \
	src/restore/load.o \
	src/restore/manifest.o \
	src/restore/restore.o \
	src/restore/stream.o \
	src/s3/s3_client.o \
	src/s3/s3_error.o \
	src/s3/s3_get.o \
	src/s3/s3_ops.o \
	src/s3/s3_request.o \
	src/s3/s3_sigv4.o \
	src/s3/s3_upload.o \
	src/s3/s3_util.o \
	src/s3/s3_xml.o
PGFILEDESC = "tsnap - version-keyed CSV snapshots of tables in S3"

# every full install script and every upgrade script
DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# TSNAP_LIBRARY_VERSION: the release, for the manifests the library writes
PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-I$(srcdir)/src \
	-DTSNAP_LIBRARY_VERSION='"$(EXTVERSION)"' \
	$(shell pkg-config --cflags libcurl libxml-2.0 openssl zlib libzstd libdeflate)
SHLIB_LINK = $(shell pkg-config --libs libcurl libxml-2.0 zlib libzstd libdeflate) -lcrypto

# pg_regress (sql/, expected/) and isolation specs (test/specs,
# test/expected).  REGRESS and ISOLATION need nothing but a server with
# shared_preload_libraries = 'tsnap', so "make installcheck" passes on any
# such cluster.  The _HARNESS lists need what the cluster of test/run-all.sh
# (test/lib.sh) adds: tsnap.s3_* settings for a live S3 server, tsnap.keep_for
# = 0 (retention at once) and max_prepared_transactions > 0.  The
# installcheck-regress and installcheck-isolation targets below run both
# lists; test/run-all.sh calls them.
REGRESS = tracking tracking_errors tracking_privileges upgrade
REGRESS_HARNESS = tracking_prepared snapshot snapshot_errors
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
ISOLATION = tracking_writers tracking_snapshot
ISOLATION_HARNESS = snapshot_callers snapshot_writers snapshot_types snapshot_jobs
ISOLATION_OPTS = --inputdir=test --outputdir=test/output_iso --load-extension=$(EXTENSION)
# TAP tests (test/t) start clusters of their own; those that need S3 skip
# themselves unless the S3_* variables that test/run-all.sh sets are there.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = test/output_iso

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after PGXS, which sets PROVE_FLAGS itself: the TAP tests' shared helpers
PROVE_FLAGS += -I $(srcdir)/test/perl

# check-version also wants an upgrade script out of every older release: a
# release that nothing upgrades from would strand the databases on it.
.PHONY: check-version
check-version:
	@test "$$(sed -n 's/^   "version": "\([^"]*\)".*/\1/p' META.json | head -1)" = "$(EXTVERSION)" || \
		{ echo "META.json version differs from tsnap.control ($(EXTVERSION))"; exit 1; }
	@grep -q '"file": "sql/$(EXTENSION)--$(EXTVERSION).sql"' META.json || \
		{ echo "META.json does not name sql/$(EXTENSION)--$(EXTVERSION).sql"; exit 1; }
	@test "$$(sed -n 's/^         "version": "\([^"]*\)".*/\1/p' META.json | head -1)" = "$(EXTVERSION)" || \
		{ echo "META.json provides a version other than $(EXTVERSION)"; exit 1; }
	@test -f sql/$(EXTENSION)--$(EXTVERSION).sql || \
		{ echo "install script sql/$(EXTENSION)--$(EXTVERSION).sql missing"; exit 1; }
	@for f in sql/$(EXTENSION)--*.sql; do \
		v=$${f#sql/$(EXTENSION)--}; v=$${v%.sql}; \
		case $$v in *--*|$(EXTVERSION)) continue ;; esac; \
		ls sql/$(EXTENSION)--$$v--*.sql >/dev/null 2>&1 || \
			{ echo "release $$v has no upgrade script sql/$(EXTENSION)--$$v--*.sql"; exit 1; }; \
	done
	@echo "version $(EXTVERSION): tsnap.control, META.json and install script agree; every older release upgrades"

# The suites one at a time (PGXS's installcheck stops at the first failing
# one), each with its _HARNESS tests, for the cluster of test/run-all.sh,
# which calls these.
.PHONY: installcheck-regress installcheck-isolation installcheck-tap
installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS) $(REGRESS_HARNESS)
installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION) $(ISOLATION_HARNESS)
installcheck-tap:
	$(prove_installcheck)
