/*-------------------------------------------------------------------------
 *
 * checksum.c
 *	  The whole-object checksum in a snapshot's manifest, computed as the
 *	  bytes go to the store.
 *
 * The build's sink (build/build.c) passes every byte it hands the store
 * through tsnap_checksum_update, in order, so the checksum is of the object
 * exactly as stored, with no second pass over it and no copy of it: the
 * state is one digest context.  A consumer verifies it with a standard
 * tool on the downloaded object:
 *	- crc32 (the default): the CRC-32 of gzip and zip (zlib's crc32()), as
 *	  eight hex digits, as crc32 (libarchive-zip-perl) prints it, computed
 *	  with libdeflate, whose carry-less-multiply code gives the same value
 *	  as zlib's tables in much less time;
 *	- sha256: SHA-256 through OpenSSL's EVP interface, as sha256sum prints
 *	  it;
 *	- md5: MD5 through EVP, as md5sum prints it;
 *	- none: no checksum, only for measuring what one costs.
 * tsnap.manifest_checksum chooses.  The default is the one whose cost to a
 * miss measured under the 5% allowed (bench/manifest_checksum.sh; the
 * figures are in README.md, "Manifest"): the worker's CPU is the miss's
 * critical path, so every cycle of the checksum adds to it.
 *
 * Ownership: OpenSSL allocates its digest context with malloc.  The
 * checksum frees it when the memory context it was made in is reset or
 * deleted (a reset callback), so an error anywhere frees it.  The object
 * is completed after the scan's transaction has ended, so the caller makes
 * the checksum in a context of its own; PostgreSQL's pg_cryptohash would
 * tie the digest to the scan transaction's resource owner instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <libdeflate.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ledger/ledger.h"
#include "settings.h"

struct TsnapObjectChecksum
{
	int			algorithm;		/* a TsnapManifestChecksum */
	EVP_MD_CTX *md;				/* sha256, md5 */
	uint32		crc;			/* crc32 */
	MemoryContextCallback cb;
};

static void
release_digest(void *arg)
{
	TsnapObjectChecksum *c = (TsnapObjectChecksum *) arg;

	if (c->md)
		EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

static void
raise_openssl(const char *what, const TsnapObjectChecksum *c)
{
	unsigned long e = ERR_get_error();

	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not %s the %s checksum of a snapshot", what,
					tsnap_checksum_name(c->algorithm)),
			 e ? errdetail_internal("%s", ERR_reason_error_string(e)) : 0));
}

/* The name of an algorithm as the manifest writes it; NULL for none. */
const char *
tsnap_checksum_name(int algorithm)
{
	switch (algorithm)
	{
		case TSNAP_MANIFEST_CHECKSUM_SHA256:
			return "sha256";
		case TSNAP_MANIFEST_CHECKSUM_MD5:
			return "md5";
		case TSNAP_MANIFEST_CHECKSUM_CRC32:
			return "crc32";
		default:
			return NULL;
	}
}

/*
 * A checksum of algorithm (a TsnapManifestChecksum), freed with the
 * current memory context.
 */
TsnapObjectChecksum *
tsnap_checksum_begin(int algorithm)
{
	TsnapObjectChecksum *c = MemoryContextAllocZero(CurrentMemoryContext,
													sizeof(TsnapObjectChecksum));
	const EVP_MD *type = NULL;

	c->algorithm = algorithm;
	if (algorithm == TSNAP_MANIFEST_CHECKSUM_CRC32)
		c->crc = 0;				/* libdeflate_crc32's initial value */
	else if (algorithm == TSNAP_MANIFEST_CHECKSUM_SHA256)
		type = EVP_sha256();
	else if (algorithm == TSNAP_MANIFEST_CHECKSUM_MD5)
		type = EVP_md5();
	if (type == NULL)
		return c;

	c->cb.func = release_digest;
	c->cb.arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &c->cb);
	c->md = EVP_MD_CTX_new();
	if (c->md == NULL || EVP_DigestInit_ex(c->md, type, NULL) != 1)
		raise_openssl("start", c);
	return c;
}

/* Add the next len bytes of the object. */
void
tsnap_checksum_update(TsnapObjectChecksum *c, const char *data,
					  size_t len)
{
	if (c->algorithm == TSNAP_MANIFEST_CHECKSUM_CRC32)
		c->crc = libdeflate_crc32(c->crc, data, len);
	else if (c->md && EVP_DigestUpdate(c->md, data, len) != 1)
		raise_openssl("compute", c);
}

/*
 * The checksum of every byte added, as lower-case hex into hex (which needs
 * TSNAP_CHECKSUM_HEX_SIZE bytes); returns the algorithm's name, or NULL
 * (and "") for none.  Call once.
 */
const char *
tsnap_checksum_final(TsnapObjectChecksum *c, char *hex)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	hex[0] = '\0';
	if (c->algorithm == TSNAP_MANIFEST_CHECKSUM_CRC32)
		snprintf(hex, TSNAP_CHECKSUM_HEX_SIZE, "%08x", (unsigned int) c->crc);
	else if (c->md)
	{
		if (EVP_DigestFinal_ex(c->md, digest, &len) != 1)
			raise_openssl("finish", c);
		Assert(len * 2 < TSNAP_CHECKSUM_HEX_SIZE);
		hex[hex_encode((char *) digest, len, hex)] = '\0';
	}
	return tsnap_checksum_name(c->algorithm);
}
