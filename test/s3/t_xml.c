/*-------------------------------------------------------------------------
 *
 * t_xml.c
 *	  Unit test of the S3 reply parsers (s3_xml.c): errors, multipart
 *	  results (including a 200 reply whose body is an <Error>, and Ceph
 *	  RGW's empty ETag), list pages, with and without the S3 namespace,
 *	  and the LastModified of listed objects.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "../../src/s3/s3_int.h"
#include "tap.h"

#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static int	nkeys;
static char keys[8][64];
static uint64_t sizes[8];
static int64_t mtimes[8];

static int
obj_cb(const tsnap_s3_object_info *o, void *arg)
{
	(void) arg;
	tsnap_s3_strlcpy(keys[nkeys], o->key, sizeof(keys[0]));
	mtimes[nkeys] = o->last_modified;
	sizes[nkeys++] = o->size;
	return 0;
}

static int
upl_cb(const tsnap_s3_upload_info *u, void *arg)
{
	(void) arg;
	tsnap_s3_strlcpy(keys[nkeys++], u->upload_id, sizeof(keys[0]));
	return strcmp(u->key, "stop") == 0;
}

#define S(s) s, strlen(s)

int
main(void)
{
	char		code[64],
				msg[256],
				etag[128];
	char	   *id;
	bool		is_err;
	tsnap_s3_xml_list list;
	const char *err1 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature "
		"we calculated does not match</Message><StringToSign>x</StringToSign></Error>";
	const char *page = "<?xml version=\"1.0\"?><ListBucketResult" NS ">"
		"<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
		"<IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>tok+/=</NextContinuationToken>"
		"<Contents><Key>p/a &amp; b</Key><LastModified>2026-11-30T10:01:24.999Z</LastModified>"
		"<Size>12</Size><ETag>&quot;e1&quot;</ETag></Contents>"
		"<Contents><Key>p/\xc3\xa9 ..</Key><Size>5368709120</Size><ETag>\"e2-3\"</ETag></Contents>"
		"<Contents><Key>p/c</Key><LastModified>2026-11-30 10:01:24Z</LastModified><Size>1</Size></Contents>"
		"</ListBucketResult>";
	const char *uploads = "<ListMultipartUploadsResult" NS "><Bucket>b</Bucket>"
		"<IsTruncated>false</IsTruncated><NextKeyMarker>k2</NextKeyMarker>"
		"<NextUploadIdMarker>u2</NextUploadIdMarker>"
		"<Upload><Key>k1</Key><UploadId>u1</UploadId></Upload>"
		"<Upload><Key>stop</Key><UploadId>u2</UploadId></Upload>"
		"<Upload><Key>k3</Key><UploadId>u3</UploadId></Upload>"
		"</ListMultipartUploadsResult>";

	ok(tsnap_s3_xml_error(S(err1), code, sizeof(code), msg, sizeof(msg)), "error reply parses");
	is_str(code, "SignatureDoesNotMatch", "error code");
	is_str(msg, "The request signature we calculated does not match", "error message");
	ok(!tsnap_s3_xml_error(S("<html>503</html>"), code, sizeof(code), msg, sizeof(msg)),
	   "non-S3 body is not an S3 error");
	ok(!tsnap_s3_xml_error(S("not xml at all <"), code, sizeof(code), msg, sizeof(msg)),
	   "garbage is not an S3 error");
	ok(!tsnap_s3_xml_error(NULL, 0, code, sizeof(code), msg, sizeof(msg)), "empty body");
	ok(!tsnap_s3_xml_error(S("<!DOCTYPE x [<!ENTITY e SYSTEM \"http://127.0.0.1:1/\">]><Error><Code>&e;</Code></Error>"),
					 code, sizeof(code), msg, sizeof(msg)) || code[0] == '\0',
	   "external entities are not fetched");

	id = tsnap_s3_xml_upload_id(S("<InitiateMultipartUploadResult" NS "><Bucket>b</Bucket>"
							"<Key>k</Key><UploadId>2~abc</UploadId></InitiateMultipartUploadResult>"));
	is_str(id, "2~abc", "upload id (namespaced)");
	free(id);
	id = tsnap_s3_xml_upload_id(S("<InitiateMultipartUploadResult><UploadId>x</UploadId></InitiateMultipartUploadResult>"));
	is_str(id, "x", "upload id (no namespace)");
	free(id);
	ok(tsnap_s3_xml_upload_id(S("<Error><Code>x</Code></Error>")) == NULL, "no upload id in an error");

	ok(tsnap_s3_xml_complete(S("<CompleteMultipartUploadResult" NS "><Location>l</Location>"
						 "<ETag>\"abc-3\"</ETag></CompleteMultipartUploadResult>"),
					   etag, sizeof(etag), &is_err) && !is_err, "complete result");
	is_str(etag, "\"abc-3\"", "complete etag");
	ok(tsnap_s3_xml_complete(S("<CompleteMultipartUploadResult><ETag></ETag></CompleteMultipartUploadResult>"),
					   etag, sizeof(etag), &is_err) && !is_err && etag[0] == '\0',
	   "RGW's empty ETag parses as empty");
	ok(tsnap_s3_xml_complete(S("<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code>"
						 "<Message>We encountered an internal error.</Message></Error>"),
					   etag, sizeof(etag), &is_err) && is_err,
	   "200 with <Error> body is detected as a failure");
	ok(!tsnap_s3_xml_complete(S("<Other/>"), etag, sizeof(etag), &is_err), "unknown reply rejected");

	nkeys = 0;
	ok(tsnap_s3_xml_list_objects(S(page), obj_cb, NULL, &list) == 0, "list page parses");
	ok(list.truncated, "IsTruncated");
	is_str(list.next_token, "tok+/=", "NextContinuationToken");
	ok(nkeys == 3 && list.count == 3, "three keys");
	is_str(keys[0], "p/a & b", "entity-decoded key");
	is_str(keys[1], "p/\xc3\xa9 ..", "unicode key");
	ok(sizes[1] == 5368709120ull, "64-bit size");
	/* date -u -d 2026-11-30T10:01:24Z +%s */
	ok(mtimes[0] == 1796032884, "LastModified in Unix seconds, the fraction dropped (%lld)",
	   (long long) mtimes[0]);
	ok(mtimes[1] == S3_TIME_UNKNOWN, "no LastModified: unknown");
	ok(mtimes[2] == S3_TIME_UNKNOWN, "LastModified not in S3's form: unknown");
	tsnap_s3_xml_list_free(&list);
	ok(tsnap_s3_xml_list_objects(S("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"),
						   obj_cb, NULL, &list) == 0 && !list.truncated && list.count == 0,
	   "empty page");
	tsnap_s3_xml_list_free(&list);
	ok(tsnap_s3_xml_list_objects(S(err1), obj_cb, NULL, &list) == -1, "error body is not a list");
	tsnap_s3_xml_list_free(&list);

	{
		static const struct
		{
			const char *text;
			int64_t		want;	/* -1: does not parse */
		}			times[] = {
			{"1970-01-01T00:00:00.000Z", 0},
			{"1970-01-01T00:00:00Z", 0},
			{"2000-02-29T23:59:59.5Z", 951868799},
			{"2026-11-30T10:01:24.000Z", 1796032884},
			{"2100-03-01T00:00:00.000Z", 4107542400},
			{"2026-11-30T10:01:24.000+01:00", -1},
			{"2026-11-30T10:01:24.Z", -1},
			{"2026-11-30T10:01:24", -1},
			{"2026-13-30T10:01:24Z", -1},
			{"2026-11-30T24:01:24Z", -1},
			{"2026-11-30T10:01:24Zjunk", -1},
			{"Mon, 30 Nov 2026 10:01:24 GMT", -1},
			{"", -1},
		};
		size_t		i;

		for (i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		{
			int64_t		t = -1;
			bool		parsed = tsnap_s3_parse_time(times[i].text, &t);

			ok(times[i].want < 0 ? !parsed : parsed && t == times[i].want,
			   "time \"%s\": %s", times[i].text,
			   times[i].want < 0 ? "refused" : "parsed");
		}
	}

	nkeys = 0;
	ok(tsnap_s3_xml_list_uploads(S(uploads), upl_cb, NULL, &list) == 1, "callback can stop the listing");
	ok(nkeys == 2, "stopped after the second upload");
	is_str(list.next_token, "k2", "NextKeyMarker");
	is_str(list.next_upload_id, "u2", "NextUploadIdMarker");
	ok(!list.truncated, "not truncated");
	tsnap_s3_xml_list_free(&list);
	return done_testing();
}
