/*-------------------------------------------------------------------------
 *
 * s3_xml.c
 *	  Parse the XML replies of S3 with libxml2: <Error>, the results of
 *	  CreateMultipartUpload and CompleteMultipartUpload, and the pages of
 *	  ListObjectsV2 and ListMultipartUploads.
 *
 * Replies are parsed from memory with the network off and errors silenced
 * (libxml2 would otherwise print to stderr).  Elements are matched on
 * their local names, so a reply parses the same with or without the S3
 * namespace.  Each function frees its document before returning; strings
 * handed to callbacks live only during the callback.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3_int.h"

#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

static xmlDocPtr
parse(const char *body, size_t len)
{
	if (body == NULL || len == 0 || len > (size_t) 0x7fffffff)
		return NULL;
	return xmlReadMemory(body, (int) len, "s3-reply.xml", NULL, XML_OPTIONS);
}

static bool
is_element(xmlNodePtr n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
		strcmp((const char *) n->name, name) == 0;
}

/* First child element of parent with this local name, or NULL. */
static xmlNodePtr
child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr	n;

	for (n = parent ? parent->children : NULL; n; n = n->next)
		if (is_element(n, name))
			return n;
	return NULL;
}

/*
 * Text of the named child as a malloc'd string; NULL if absent.  An empty
 * element gives "".
 */
static char *
child_text(xmlNodePtr parent, const char *name)
{
	xmlNodePtr	n = child(parent, name);
	xmlChar    *t;
	char	   *s;

	if (n == NULL)
		return NULL;
	t = xmlNodeGetContent(n);
	s = strdup(t ? (const char *) t : "");
	if (t)
		xmlFree(t);
	return s;
}

static void
copy_child_text(xmlNodePtr parent, const char *name, char *out, size_t outlen)
{
	char	   *s = child_text(parent, name);

	tsnap_s3_strlcpy(out, s ? s : "", outlen);
	free(s);
}

/*
 * If body is an S3 <Error> document, copy its Code and Message and return
 * true.  Returns false for anything else (empty, HTML, other XML).
 */
bool
tsnap_s3_xml_error(const char *body, size_t len, char *code, size_t codelen,
				   char *message, size_t msglen)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	bool		found = false;

	if (doc == NULL)
		return false;
	root = xmlDocGetRootElement(doc);
	if (is_element(root, "Error"))
	{
		copy_child_text(root, "Code", code, codelen);
		copy_child_text(root, "Message", message, msglen);
		found = true;
	}
	xmlFreeDoc(doc);
	return found;
}

/* UploadId of an InitiateMultipartUploadResult; malloc'd, or NULL. */
char *
tsnap_s3_xml_upload_id(const char *body, size_t len)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	char	   *id = NULL;

	if (doc == NULL)
		return NULL;
	root = xmlDocGetRootElement(doc);
	if (is_element(root, "InitiateMultipartUploadResult"))
		id = child_text(root, "UploadId");
	xmlFreeDoc(doc);
	if (id != NULL && id[0] == '\0')
	{
		free(id);
		id = NULL;
	}
	return id;
}

/*
 * Read a CompleteMultipartUpload reply.  S3 can answer 200 and still fail
 * (the body is then an <Error>): *is_error tells which.  Returns false if
 * the body is neither a result nor an error.  etag may come back empty
 * (Ceph RGW leaves <ETag> empty).
 */
bool
tsnap_s3_xml_complete(const char *body, size_t len, char *etag, size_t etaglen,
					  bool *is_error)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	bool		ok = false;

	*is_error = false;
	if (etaglen > 0)
		etag[0] = '\0';
	if (doc == NULL)
		return false;
	root = xmlDocGetRootElement(doc);
	if (is_element(root, "CompleteMultipartUploadResult"))
	{
		copy_child_text(root, "ETag", etag, etaglen);
		ok = true;
	}
	else if (is_element(root, "Error"))
	{
		*is_error = true;
		ok = true;
	}
	xmlFreeDoc(doc);
	return ok;
}

static bool
text_is_true(xmlNodePtr parent, const char *name)
{
	char	   *s = child_text(parent, name);
	bool		t = s != NULL && strcmp(s, "true") == 0;

	free(s);
	return t;
}

/*
 * What tells the pages of ListObjectsV2 and ListMultipartUploads apart: the
 * root element, the elements that carry the pagination state, the entry
 * element, and the children read from each entry, of which the first
 * nrequired must be present.  Both listings parse through list_page().
 */
#define LIST_MAX_FIELDS 4

typedef struct list_shape
{
	const char *root;
	const char *next_token;		/* NextContinuationToken or NextKeyMarker */
	const char *next_id;		/* NextUploadIdMarker, or NULL */
	const char *entry;
	const char *fields[LIST_MAX_FIELDS];	/* NULL = unused */
	int			nrequired;
} list_shape;

static const list_shape objects_shape = {
	"ListBucketResult", "NextContinuationToken", NULL,
	"Contents", {"Key", "Size", "ETag", "LastModified"}, 1
};

static const list_shape uploads_shape = {
	"ListMultipartUploadsResult", "NextKeyMarker", "NextUploadIdMarker",
	"Upload", {"Key", "UploadId", NULL, NULL}, 2
};

/* The caller's callback (the one that matches the listing) and its arg. */
typedef struct list_walk
{
	tsnap_s3_object_cb object_cb;
	tsnap_s3_upload_cb upload_cb;
	void	   *arg;
} list_walk;

/*
 * Hand one entry's fields, in list_shape order, to the caller's callback.
 * Returns nonzero if the callback asked to stop.
 */
typedef int (*deliver_fn) (char *const *fields, const list_walk *walk);

/*
 * One page of the listing described by shape: fill list with the
 * pagination state and deliver each entry.  Returns 0 on success, 1 if the
 * callback stopped, -1 if the reply is not such a page or an entry lacks a
 * required field.
 */
static int
list_page(const char *body, size_t len, const list_shape *shape,
		  deliver_fn deliver, const list_walk *walk, tsnap_s3_xml_list *list)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	xmlNodePtr	n;
	int			rc = 0;

	memset(list, 0, sizeof(*list));
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!is_element(root, shape->root))
	{
		xmlFreeDoc(doc);
		return -1;
	}
	list->truncated = text_is_true(root, "IsTruncated");
	list->next_token = child_text(root, shape->next_token);
	if (shape->next_id)
		list->next_upload_id = child_text(root, shape->next_id);
	for (n = root->children; n && rc == 0; n = n->next)
	{
		char	   *fields[LIST_MAX_FIELDS];
		int			i;

		if (!is_element(n, shape->entry))
			continue;
		for (i = 0; i < LIST_MAX_FIELDS; i++)
		{
			fields[i] = shape->fields[i] ?
				child_text(n, shape->fields[i]) : NULL;
			if (i < shape->nrequired && fields[i] == NULL)
				rc = -1;
		}
		if (rc == 0)
		{
			list->count++;
			if (deliver(fields, walk) != 0)
				rc = 1;
		}
		for (i = 0; i < LIST_MAX_FIELDS; i++)
			free(fields[i]);
	}
	xmlFreeDoc(doc);
	return rc;
}

/*
 * A <Contents> entry: Key, Size, ETag, LastModified.  A LastModified that
 * is missing or does not parse is S3_TIME_UNKNOWN (see s3.h).
 */
static int
deliver_object(char *const *fields, const list_walk *walk)
{
	tsnap_s3_object_info info;

	info.key = fields[0];
	info.size = fields[1] ? strtoull(fields[1], NULL, 10) : 0;
	info.etag = fields[2] ? fields[2] : "";
	if (!tsnap_s3_parse_time(fields[3], &info.last_modified))
		info.last_modified = S3_TIME_UNKNOWN;
	return walk->object_cb && walk->object_cb(&info, walk->arg) != 0;
}

/* An <Upload> entry: Key, UploadId. */
static int
deliver_upload(char *const *fields, const list_walk *walk)
{
	tsnap_s3_upload_info info;

	info.key = fields[0];
	info.upload_id = fields[1];
	return walk->upload_cb && walk->upload_cb(&info, walk->arg) != 0;
}

/*
 * One ListObjectsV2 page: call cb for each <Contents>, fill list with the
 * pagination state.  Returns 0 on success, 1 if cb stopped, -1 if the
 * reply is not a ListBucketResult.
 */
int
tsnap_s3_xml_list_objects(const char *body, size_t len, tsnap_s3_object_cb cb,
						  void *arg, tsnap_s3_xml_list *list)
{
	list_walk	walk = {cb, NULL, arg};

	return list_page(body, len, &objects_shape, deliver_object, &walk, list);
}

/*
 * One ListMultipartUploads page: cb for each <Upload>.  Same return
 * convention as tsnap_s3_xml_list_objects.
 */
int
tsnap_s3_xml_list_uploads(const char *body, size_t len, tsnap_s3_upload_cb cb,
						  void *arg, tsnap_s3_xml_list *list)
{
	list_walk	walk = {NULL, cb, arg};

	return list_page(body, len, &uploads_shape, deliver_upload, &walk, list);
}

void
tsnap_s3_xml_list_free(tsnap_s3_xml_list *list)
{
	free(list->next_token);
	free(list->next_upload_id);
	list->next_token = NULL;
	list->next_upload_id = NULL;
}
