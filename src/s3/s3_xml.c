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
 * One ListObjectsV2 page: call cb for each <Contents>, fill list with the
 * pagination state.  Returns 0 on success, 1 if cb stopped, -1 if the
 * reply is not a ListBucketResult.
 */
int
tsnap_s3_xml_list_objects(const char *body, size_t len, tsnap_s3_object_cb cb, void *arg,
					tsnap_s3_xml_list *list)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	xmlNodePtr	n;
	int			rc = 0;

	memset(list, 0, sizeof(*list));
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!is_element(root, "ListBucketResult"))
	{
		xmlFreeDoc(doc);
		return -1;
	}
	list->truncated = text_is_true(root, "IsTruncated");
	list->next_token = child_text(root, "NextContinuationToken");
	for (n = root->children; n && rc == 0; n = n->next)
	{
		tsnap_s3_object_info info;
		char	   *key,
				   *size,
				   *etag;

		if (!is_element(n, "Contents"))
			continue;
		key = child_text(n, "Key");
		size = child_text(n, "Size");
		etag = child_text(n, "ETag");
		if (key == NULL)
			rc = -1;
		else
		{
			info.key = key;
			info.size = size ? strtoull(size, NULL, 10) : 0;
			info.etag = etag ? etag : "";
			list->count++;
			if (cb && cb(&info, arg) != 0)
				rc = 1;
		}
		free(key);
		free(size);
		free(etag);
	}
	xmlFreeDoc(doc);
	return rc;
}

/*
 * One ListMultipartUploads page: cb for each <Upload>.  Same return
 * convention as tsnap_s3_xml_list_objects.
 */
int
tsnap_s3_xml_list_uploads(const char *body, size_t len, tsnap_s3_upload_cb cb, void *arg,
					tsnap_s3_xml_list *list)
{
	xmlDocPtr	doc = parse(body, len);
	xmlNodePtr	root;
	xmlNodePtr	n;
	int			rc = 0;

	memset(list, 0, sizeof(*list));
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!is_element(root, "ListMultipartUploadsResult"))
	{
		xmlFreeDoc(doc);
		return -1;
	}
	list->truncated = text_is_true(root, "IsTruncated");
	list->next_token = child_text(root, "NextKeyMarker");
	list->next_upload_id = child_text(root, "NextUploadIdMarker");
	for (n = root->children; n && rc == 0; n = n->next)
	{
		tsnap_s3_upload_info info;
		char	   *key,
				   *id;

		if (!is_element(n, "Upload"))
			continue;
		key = child_text(n, "Key");
		id = child_text(n, "UploadId");
		if (key == NULL || id == NULL)
			rc = -1;
		else
		{
			info.key = key;
			info.upload_id = id;
			list->count++;
			if (cb && cb(&info, arg) != 0)
				rc = 1;
		}
		free(key);
		free(id);
	}
	xmlFreeDoc(doc);
	return rc;
}

void
tsnap_s3_xml_list_free(tsnap_s3_xml_list *list)
{
	free(list->next_token);
	free(list->next_upload_id);
	list->next_token = NULL;
	list->next_upload_id = NULL;
}
