/*-------------------------------------------------------------------------
 *
 * s3_ops.c
 *	  The S3 operations tsnap uses, one blocking call each: PutObject,
 *	  HeadObject, GetObject (streamed to a callback), DeleteObject,
 *	  ListObjectsV2 (all pages, or one at a time) and ListMultipartUploads
 *	  (all pages), Create, Complete
 *	  and Abort of a multipart upload, and presigned URLs.  UploadPart has
 *	  no blocking form: the uploader (s3_upload.c) runs parts in parallel.
 *
 * Each call builds a tsnap_s3_request, runs it through tsnap_s3_perform
 * (which retries transient failures) and interprets the reply.  Every
 * tsnap_s3_xfer that succeeds is cleaned up here before returning.  Strings
 * returned to the caller (upload ids, URLs) are malloc'd and owned by the
 * caller.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3_int.h"

#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/*
 * Start a request: zeroed (no query, headers or body; the client's retry
 * limit; interruptible), then named.  key NULL = bucket-level request.
 */
static void
request_init(tsnap_s3_request *req, const char *operation, const char *method,
			 const char *key)
{
	memset(req, 0, sizeof(*req));
	req->operation = operation;
	req->method = method;
	req->key = key;
}

/* Copy an ETag out, if the caller wants it. */
static void
copy_etag(char *out, size_t outlen, const char *etag)
{
	if (out && outlen > 0)
		tsnap_s3_strlcpy(out, etag, outlen);
}

/*
 * PutObject: store data (len bytes, held in memory) at key in one request.
 * The payload is hashed and signed.
 */
bool
tsnap_s3_put_object(tsnap_s3_client *c, const char *key, const void *data,
					size_t len, const char *content_type, char *etag_out,
					size_t etag_len, tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	tsnap_s3_kv hdr[1];

	hdr[0].name = "Content-Type";
	hdr[0].value = content_type ? content_type : DEFAULT_CONTENT_TYPE;
	request_init(&req, "PutObject", "PUT", key);
	req.headers = hdr;
	req.nheaders = 1;
	req.body = data ? data : "";
	req.body_len = len;
	if (!tsnap_s3_perform(c, &req, &x, err))
		return false;
	copy_etag(etag_out, etag_len, x.etag);
	tsnap_s3_xfer_cleanup(&x);
	return true;
}

/*
 * HeadObject: size and ETag of key.  A missing key fails with
 * http_status 404 (tsnap_s3_error_is_not_found).
 */
bool
tsnap_s3_head_object(tsnap_s3_client *c, const char *key, uint64_t *size_out,
					 char *etag_out, size_t etag_len, tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;

	request_init(&req, "HeadObject", "HEAD", key);
	if (!tsnap_s3_perform(c, &req, &x, err))
		return false;
	if (size_out)
		*size_out = x.have_length ? x.content_length : 0;
	copy_etag(etag_out, etag_len, x.etag);
	tsnap_s3_xfer_cleanup(&x);
	return true;
}

typedef struct counting_sink
{
	tsnap_s3_data_cb cb;
	void	   *arg;
	uint64_t	bytes;
} counting_sink;

static int
count_cb(const char *data, size_t len, void *arg)
{
	counting_sink *s = arg;

	s->bytes += len;
	return s->cb(data, len, s->arg);
}

/*
 * GetObject: stream the object's bytes to cb as they arrive; nothing is
 * buffered whole.  cb returning nonzero stops with S3_ERR_CALLBACK.
 */
bool
tsnap_s3_get_object(tsnap_s3_client *c, const char *key, tsnap_s3_data_cb cb,
					void *arg, uint64_t *size_out, tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	counting_sink sink = {cb, arg, 0};

	request_init(&req, "GetObject", "GET", key);
	req.sink = count_cb;
	req.sink_arg = &sink;
	if (!tsnap_s3_perform(c, &req, &x, err))
		return false;
	tsnap_s3_xfer_cleanup(&x);
	if (size_out)
		*size_out = sink.bytes;
	return true;
}

/* DeleteObject; deleting a missing key succeeds, as in S3. */
bool
tsnap_s3_delete_object(tsnap_s3_client *c, const char *key,
					   tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;

	request_init(&req, "DeleteObject", "DELETE", key);
	if (!tsnap_s3_perform(c, &req, &x, err))
		return tsnap_s3_error_is_not_found(err) ?
			(tsnap_s3_error_clear(err), true) : false;
	tsnap_s3_xfer_cleanup(&x);
	return true;
}

/*
 * One page of ListObjectsV2 or ListMultipartUploads (uploads = true) under
 * prefix (NULL or "" = all), continuing from token and id_marker (NULL on
 * the first page), at most max_keys entries (0 = S3's default).  The
 * matching s3_xml.c parser calls object_cb or upload_cb once per entry in
 * S3's order.  On success list holds the pagination state (the caller
 * frees it with tsnap_s3_xml_list_free); a truncated page always has a
 * token for the next.  On failure err is filled and list holds nothing.
 *
 * The two listings differ only in their names: ListObjectsV2 continues from
 * NextContinuationToken (continuation-token=), ListMultipartUploads from
 * NextKeyMarker and NextUploadIdMarker (key-marker=, upload-id-marker=).
 * Memory is one page's reply, whatever the number of pages.
 */
static bool
list_one_page(tsnap_s3_client *c, const char *prefix, bool uploads,
			  int max_keys, const char *token, const char *id_marker,
			  tsnap_s3_object_cb object_cb, tsnap_s3_upload_cb upload_cb,
			  void *arg, tsnap_s3_xml_list *list, tsnap_s3_error *err)
{
	const char *operation = uploads ? "ListMultipartUploads" : "ListObjectsV2";
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	tsnap_s3_kv q[5];
	int			nq = 0;
	char		max_keys_text[16];
	int			rc;

	memset(list, 0, sizeof(*list));
	q[nq].name = uploads ? "uploads" : "list-type";
	q[nq++].value = uploads ? NULL : "2";
	if (prefix && prefix[0])
	{
		q[nq].name = "prefix";
		q[nq++].value = prefix;
	}
	if (token)
	{
		q[nq].name = uploads ? "key-marker" : "continuation-token";
		q[nq++].value = token;
	}
	if (id_marker)
	{
		q[nq].name = "upload-id-marker";
		q[nq++].value = id_marker;
	}
	if (max_keys > 0)
	{
		snprintf(max_keys_text, sizeof(max_keys_text), "%d", max_keys);
		q[nq].name = uploads ? "max-uploads" : "max-keys";
		q[nq++].value = max_keys_text;
	}
	request_init(&req, operation, "GET", NULL);
	req.query = q;
	req.nquery = nq;
	if (!tsnap_s3_perform(c, &req, &x, err))
	{
		tsnap_s3_strlcpy(err->key, prefix ? prefix : "", sizeof(err->key));
		return false;
	}
	if (uploads)
		rc = tsnap_s3_xml_list_uploads(x.reply.data, x.reply.len,
									   upload_cb, arg, list);
	else
		rc = tsnap_s3_xml_list_objects(x.reply.data, x.reply.len,
									   object_cb, arg, list);
	tsnap_s3_xfer_cleanup(&x);
	if (rc != 0)
	{
		tsnap_s3_error_set(err, rc > 0 ? S3_ERR_CALLBACK : S3_ERR_INTERNAL,
						   operation, prefix,
						   rc > 0 ? "stopped by the callback" :
						   "unexpected reply");
		tsnap_s3_xml_list_free(list);
		return false;
	}
	if (list->truncated &&
		(list->next_token == NULL || list->next_token[0] == '\0'))
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, operation, prefix,
						   "truncated reply without %s",
						   uploads ? "NextKeyMarker" :
						   "NextContinuationToken");
		tsnap_s3_xml_list_free(list);
		return false;
	}
	return true;
}

/*
 * Every page of a listing (see list_one_page), until one is not
 * truncated.
 */
static bool
list_pages(tsnap_s3_client *c, const char *prefix, bool uploads,
		   tsnap_s3_object_cb object_cb, tsnap_s3_upload_cb upload_cb,
		   void *arg, tsnap_s3_error *err)
{
	char	   *token = NULL;	/* continuation token, or key marker */
	char	   *id_marker = NULL;	/* upload id marker (uploads only) */
	bool		ok = true;

	for (;;)
	{
		tsnap_s3_xml_list list;

		ok = list_one_page(c, prefix, uploads, 0, token, id_marker,
						   object_cb, upload_cb, arg, &list, err);
		free(token);
		free(id_marker);
		token = id_marker = NULL;
		if (!ok)
			break;
		if (!list.truncated)
		{
			tsnap_s3_xml_list_free(&list);
			break;
		}
		/* ListObjectsV2 pages have no upload id marker: it stays NULL. */
		token = list.next_token;
		id_marker = list.next_upload_id;
		list.next_token = list.next_upload_id = NULL;
		tsnap_s3_xml_list_free(&list);
	}
	free(token);
	free(id_marker);
	return ok;
}

/*
 * ListObjectsV2 of every key under prefix (NULL or "" = all), page by
 * page; cb is called once per key in S3's order.
 */
bool
tsnap_s3_list_objects(tsnap_s3_client *c, const char *prefix,
					  tsnap_s3_object_cb cb, void *arg, tsnap_s3_error *err)
{
	return list_pages(c, prefix, false, cb, NULL, arg, err);
}

/*
 * One page of ListObjectsV2 (see s3.h): cb once per key of the page, then
 * *next_token, malloc'd, or NULL when this was the last page.
 */
bool
tsnap_s3_list_objects_page(tsnap_s3_client *c, const char *prefix,
						   int max_keys, const char *token, char **next_token,
						   tsnap_s3_object_cb cb, void *arg,
						   tsnap_s3_error *err)
{
	tsnap_s3_xml_list list;

	*next_token = NULL;
	if (max_keys < 0 || max_keys > S3_LIST_MAX_KEYS)
	{
		tsnap_s3_error_set(err, S3_ERR_INVALID, "ListObjectsV2", prefix,
						   "max_keys must be between 0 and %d",
						   S3_LIST_MAX_KEYS);
		return false;
	}
	if (!list_one_page(c, prefix, false, max_keys, token, NULL, cb, NULL, arg,
					   &list, err))
		return false;
	if (list.truncated)
	{
		*next_token = list.next_token;
		list.next_token = NULL;
	}
	tsnap_s3_xml_list_free(&list);
	return true;
}

/*
 * ListMultipartUploads of every open upload under prefix, all pages.
 */
bool
tsnap_s3_list_multipart_uploads(tsnap_s3_client *c, const char *prefix,
								tsnap_s3_upload_cb cb, void *arg,
								tsnap_s3_error *err)
{
	return list_pages(c, prefix, true, NULL, cb, arg, err);
}

/*
 * CreateMultipartUpload; returns the malloc'd UploadId or NULL.  The
 * Content-Type given here becomes the object's.
 */
char *
tsnap_s3_create_multipart_upload(tsnap_s3_client *c, const char *key,
								 const char *content_type, tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	tsnap_s3_kv q[1] = {{"uploads", NULL}};
	tsnap_s3_kv hdr[1];
	char	   *id;

	hdr[0].name = "Content-Type";
	hdr[0].value = content_type ? content_type : DEFAULT_CONTENT_TYPE;
	request_init(&req, "CreateMultipartUpload", "POST", key);
	req.query = q;
	req.nquery = 1;
	req.headers = hdr;
	req.nheaders = 1;
	if (!tsnap_s3_perform(c, &req, &x, err))
		return NULL;
	id = tsnap_s3_xml_upload_id(x.reply.data, x.reply.len);
	tsnap_s3_xfer_cleanup(&x);
	if (id == NULL)
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "CreateMultipartUpload", key,
						   "reply has no UploadId");
	return id;
}

static void
xml_escape(tsnap_s3_buf *b, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				tsnap_s3_buf_puts(b, "&amp;");
				break;
			case '<':
				tsnap_s3_buf_puts(b, "&lt;");
				break;
			case '>':
				tsnap_s3_buf_puts(b, "&gt;");
				break;
			default:
				tsnap_s3_buf_append(b, s, 1);
		}
	}
}

/*
 * CompleteMultipartUpload of parts 1..nparts with their ETags.  A 200
 * reply whose body is <Error> is a failure, retried if transient (see
 * tsnap_s3_xfer_outcome).  If a retried Complete answers NoSuchUpload, an
 * earlier attempt may have completed before its reply was lost: the object
 * is then looked up.  etag_out may come back empty (Ceph RGW); ask
 * HeadObject then.
 */
bool
tsnap_s3_complete_multipart_upload(tsnap_s3_client *c, const char *key,
								   const char *upload_id,
								   const char *const *etags, int nparts,
								   char *etag_out, size_t etag_len,
								   tsnap_s3_error *err)
{
	tsnap_s3_buf body;
	tsnap_s3_kv q[1];
	tsnap_s3_kv hdr[1];
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	bool		is_error = false;
	bool		ok;
	int			i;

	tsnap_s3_buf_init(&body);
	tsnap_s3_buf_puts(&body, "<CompleteMultipartUpload"
					  " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (i = 0; i < nparts; i++)
	{
		tsnap_s3_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>",
							i + 1);
		xml_escape(&body, etags[i]);
		tsnap_s3_buf_puts(&body, "</ETag></Part>");
	}
	tsnap_s3_buf_puts(&body, "</CompleteMultipartUpload>");
	if (body.oom)
	{
		tsnap_s3_buf_free(&body);
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "CompleteMultipartUpload",
						   key, "out of memory");
		return false;
	}
	q[0].name = "uploadId";
	q[0].value = upload_id;
	hdr[0].name = "Content-Type";
	hdr[0].value = "application/xml";
	request_init(&req, "CompleteMultipartUpload", "POST", key);
	req.query = q;
	req.nquery = 1;
	req.headers = hdr;
	req.nheaders = 1;
	req.body = body.data;
	req.body_len = body.len;
	ok = tsnap_s3_perform(c, &req, &x, err);
	tsnap_s3_buf_free(&body);
	if (!ok)
	{
		if (err->attempts > 1 && strcmp(err->code, "NoSuchUpload") == 0)
		{
			tsnap_s3_error probe;

			if (tsnap_s3_head_object(c, key, NULL, etag_out, etag_len, &probe))
			{
				tsnap_s3_error_clear(err);
				return true;
			}
		}
		return false;
	}
	ok = tsnap_s3_xml_complete(x.reply.data, x.reply.len, etag_out, etag_len,
							   &is_error);
	tsnap_s3_xfer_cleanup(&x);
	if (!ok || is_error)
	{
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "CompleteMultipartUpload",
						   key, "unexpected reply");
		return false;
	}
	return true;
}

/*
 * AbortMultipartUpload.  This is cleanup, run after failures and
 * interrupts, so it ignores the interrupt hook (its own timeouts bound
 * it).  An upload that no longer exists counts as aborted.
 */
bool
tsnap_s3_abort_multipart_upload(tsnap_s3_client *c, const char *key,
								const char *upload_id, tsnap_s3_error *err)
{
	tsnap_s3_request req;
	tsnap_s3_xfer x;
	tsnap_s3_kv q[1];

	q[0].name = "uploadId";
	q[0].value = upload_id;
	request_init(&req, "AbortMultipartUpload", "DELETE", key);
	req.query = q;
	req.nquery = 1;
	req.no_interrupt = true;
	req.max_attempts = c->max_attempts < 3 ? c->max_attempts : 3;
	if (!tsnap_s3_perform(c, &req, &x, err))
	{
		if (err->http_status == 404)
		{
			tsnap_s3_error_clear(err);
			return true;
		}
		return false;
	}
	tsnap_s3_xfer_cleanup(&x);
	return true;
}

/*
 * A presigned URL for method on key, valid expires_seconds from now
 * (at most 7 days, S3's limit).  The URL grants access by itself: never
 * log it.  Returns malloc'd, or NULL with err filled.
 */
char *
tsnap_s3_presign_url(tsnap_s3_client *c, const char *method, const char *key,
					 long expires_seconds, tsnap_s3_error *err)
{
	tsnap_s3_buf path,
				base;
	tsnap_s3_kv hdr[1];
	tsnap_s3_sigv4_input in;
	char		amz_date[17];
	char	   *url;

	if (expires_seconds < 1 || expires_seconds > 604800)
	{
		tsnap_s3_error_set(err, S3_ERR_INVALID, "presign", key,
						   "expiry must be between 1 and 604800 seconds");
		return NULL;
	}
	tsnap_s3_buf_init(&path);
	tsnap_s3_buf_init(&base);
	tsnap_s3_build_path(&path, c, key);
	tsnap_s3_buf_printf(&base, "%s%s", c->endpoint,
						path.data ? path.data : "");
	tsnap_s3_amz_date(c->fixed_time ? c->fixed_time : time(NULL), amz_date);

	hdr[0].name = "host";
	hdr[0].value = c->host;
	memset(&in, 0, sizeof(in));
	in.method = method;
	in.canonical_uri = path.data;
	in.headers = hdr;
	in.nheaders = 1;
	in.payload_hash = "UNSIGNED-PAYLOAD";
	in.access_key_id = c->access_key_id;
	in.secret_access_key = c->secret_access_key;
	in.region = c->region;
	in.service = "s3";
	in.amz_date = amz_date;
	url = (path.oom || base.oom) ? NULL :
		tsnap_s3_sigv4_presign(&in, base.data, expires_seconds,
							   c->session_token);
	tsnap_s3_buf_free(&path);
	tsnap_s3_buf_free(&base);
	if (url == NULL)
		tsnap_s3_error_set(err, S3_ERR_INTERNAL, "presign", key,
						   "out of memory");
	return url;
}
