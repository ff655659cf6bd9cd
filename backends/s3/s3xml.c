/*
 * s3xml.c - see s3xml.h.  Documents are parsed into a libxml2 tree with
 * network access and entity expansion off, then walked by local name.
 */
#include "s3xml.h"

#include "iso8601.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xmlDocPtr parse(const char *body, size_t len)
{
	if (body == NULL || len == 0 || len > (size_t)0x7fffffff)
		return NULL;
	return xmlReadMemory(body, (int)len, "s3.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	                         XML_PARSE_NOBLANKS);
}

static int is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *parent, const char *name)
{
	for (const xmlNode *c = parent->children; c != NULL; c = c->next) {
		if (is(c, name))
			return c;
	}
	return NULL;
}

/* The text of parent's child called name, or NULL.  xmlFree() it. */
static char *child_text(const xmlNode *parent, const char *name)
{
	const xmlNode *c = child(parent, name);
	return c ? (char *)xmlNodeGetContent(c) : NULL;
}

static void copy_text(const xmlNode *parent, const char *name, char *dst, size_t len)
{
	char *s = child_text(parent, name);

	if (s != NULL) {
		snprintf(dst, len, "%s", s);
		xmlFree(s);
	}
}

static int fill_error(const xmlNode *root, struct s3xml_error *err)
{
	memset(err, 0, sizeof(*err));
	if (root == NULL || !is(root, "Error"))
		return -EINVAL;
	copy_text(root, "Code", err->code, sizeof(err->code));
	copy_text(root, "Message", err->message, sizeof(err->message));
	copy_text(root, "RequestId", err->request_id, sizeof(err->request_id));
	copy_text(root, "Region", err->region, sizeof(err->region));
	return err->code[0] ? 0 : -EINVAL;
}

int s3xml_parse_error(const char *body, size_t len, struct s3xml_error *err)
{
	xmlDocPtr doc = parse(body, len);
	int ret;

	memset(err, 0, sizeof(*err));
	if (doc == NULL)
		return -EINVAL;
	ret = fill_error(xmlDocGetRootElement(doc), err);
	xmlFreeDoc(doc);
	return ret;
}

/* S3 writes listing times in UTC, "Z" (or "+00:00"). */
int s3xml_parse_time(const char *s, struct timespec *t)
{
	return iso8601_parse(s, ISO8601_UTC_ONLY, t);
}

/* Unquote an ETag ("\"abc\"" -> "abc") into dst. */
static void copy_etag(const char *s, char *dst, size_t len)
{
	size_t n = strlen(s);

	if (len == 0)
		return;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int add_entry(const xmlNode *c, size_t strip, struct backend_list *out, size_t *cap)
{
	struct backend_entry *e;
	char *key = child_text(c, "Key"), *s;
	int ret = 0;

	if (key == NULL)
		return -EINVAL;
	if (strlen(key) < strip)
		goto out; /* outside the mount's prefix */
	ret = grow((void **)&out->entries, cap, out->n_entries, sizeof(*out->entries));
	if (ret < 0)
		goto out;
	e = &out->entries[out->n_entries];
	memset(e, 0, sizeof(*e));
	e->key = strdup(key + strip);
	if (e->key == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	if ((s = child_text(c, "Size")) != NULL) {
		e->st.size = strtoull(s, NULL, 10);
		xmlFree(s);
	}
	if ((s = child_text(c, "LastModified")) != NULL) {
		s3xml_parse_time(s, &e->st.mtime);
		xmlFree(s);
	}
	if ((s = child_text(c, "ETag")) != NULL) {
		copy_etag(s, e->st.etag, sizeof(e->st.etag));
		xmlFree(s);
	}
	out->n_entries++;
out:
	xmlFree(key);
	return ret;
}

static int add_prefix(const xmlNode *c, size_t strip, struct backend_list *out, size_t *cap)
{
	char *p = child_text(c, "Prefix");
	int ret = 0;

	if (p == NULL)
		return -EINVAL;
	if (strlen(p) > strip) {
		ret = grow((void **)&out->prefixes, cap, out->n_prefixes, sizeof(*out->prefixes));
		if (ret == 0) {
			out->prefixes[out->n_prefixes] = strdup(p + strip);
			if (out->prefixes[out->n_prefixes] == NULL)
				ret = -ENOMEM;
			else
				out->n_prefixes++;
		}
	}
	xmlFree(p);
	return ret;
}

int s3xml_parse_list(const char *body, size_t len, size_t strip, struct backend_list *out)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root;
	size_t ecap = 0, pcap = 0;
	char *truncated, *token;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is(root, "ListBucketResult")) {
		ret = -EINVAL;
		goto out;
	}
	for (const xmlNode *c = root->children; c != NULL && ret == 0; c = c->next) {
		if (is(c, "Contents"))
			ret = add_entry(c, strip, out, &ecap);
		else if (is(c, "CommonPrefixes"))
			ret = add_prefix(c, strip, out, &pcap);
	}
	truncated = child_text(root, "IsTruncated");
	token = child_text(root, "NextContinuationToken");
	if (ret == 0 && truncated != NULL && strcmp(truncated, "true") == 0) {
		if (token == NULL || (out->next_token = strdup(token)) == NULL)
			ret = token ? -ENOMEM : -EINVAL;
	}
	xmlFree(truncated);
	xmlFree(token);
out:
	xmlFreeDoc(doc);
	return ret;
}

int s3xml_parse_upload_id(const char *body, size_t len, char **upload_id)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root;
	char *id = NULL;

	*upload_id = NULL;
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (root != NULL && is(root, "InitiateMultipartUploadResult"))
		id = child_text(root, "UploadId");
	if (id != NULL && *id != '\0')
		*upload_id = strdup(id);
	xmlFree(id);
	xmlFreeDoc(doc);
	return *upload_id ? 0 : -EINVAL;
}

int s3xml_parse_result_etag(const char *body, size_t len, char *etag, size_t etag_len,
                            struct s3xml_error *err)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root;
	char *s;
	int ret = -EINVAL;

	memset(err, 0, sizeof(*err));
	if (etag_len > 0)
		etag[0] = '\0';
	if (doc == NULL)
		return -EINVAL;
	root = xmlDocGetRootElement(doc);
	if (root != NULL && is(root, "Error")) {
		fill_error(root, err);
		ret = -EIO;
	} else if (root != NULL && (s = child_text(root, "ETag")) != NULL) {
		copy_etag(s, etag, etag_len);
		xmlFree(s);
		ret = 0;
	}
	xmlFreeDoc(doc);
	return ret;
}

char *s3xml_complete_body(char *const *etags, size_t n)
{
	size_t cap = 64 + n * 200, used;
	char *body = malloc(cap);

	if (body == NULL)
		return NULL;
	used = (size_t)snprintf(body, cap, "<CompleteMultipartUpload>");
	for (size_t i = 0; i < n; i++) {
		int w;

		/* ETags are hex digits and '-'; anything else would need escaping. */
		if (strlen(etags[i]) > 96 ||
		    strspn(etags[i], "0123456789abcdefABCDEF-") != strlen(etags[i])) {
			free(body);
			return NULL;
		}
		w = snprintf(body + used, cap - used,
		             "<Part><PartNumber>%zu</PartNumber><ETag>\"%s\"</ETag></Part>", i + 1,
		             etags[i]);
		used += (size_t)w;
	}
	snprintf(body + used, cap - used, "</CompleteMultipartUpload>");
	return body;
}
