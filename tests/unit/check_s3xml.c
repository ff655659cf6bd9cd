/*
 * check_s3xml.c - unit tests for backends/s3/s3xml.c, the S3 XML documents.
 *
 * Suites, one per function family:
 *
 *   list     ListObjectsV2 results: with and without the S3 namespace (and
 *            with a namespace prefix), Contents fields, CommonPrefixes,
 *            IsTruncated / NextContinuationToken, stripping the mount's
 *            prefix, escaped / UTF-8 / space-holding keys, empty and huge
 *            listings, documents that are not listings, garbage, a body
 *            that is not NUL-terminated.
 *   error    Error documents.
 *   result   InitiateMultipartUploadResult (UploadId), CopyObjectResult and
 *            CompleteMultipartUploadResult (ETag), an <Error> sent with
 *            status 200.
 *   complete The CompleteMultipartUpload body, parsed back with libxml2.
 *   time     s3xml_parse_time.
 *   safety   The parser never loads external entities or DTDs, neither
 *            from files nor from the network, and survives "billion laughs".
 *
 * Bodies are passed with an explicit length, as the S3 backend does; the
 * helpers copy each body into a heap buffer of exactly that length (no
 * terminating NUL), so ASan catches a parser that reads past the end.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "s3/s3xml.h"
#include "suites.h"

#define S3NS    "http://s3.amazonaws.com/doc/2006-03-01/"
#define XMLDECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* A heap copy of s without its NUL, so reads past len are caught. */
static char *exact_copy(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, s, len);
	return p;
}

static int parse_list(const char *doc, size_t strip, struct backend_list *out)
{
	size_t len = strlen(doc);
	char *body = exact_copy(doc, len);
	int ret = s3xml_parse_list(body, len, strip, out);

	free(body);
	return ret;
}

static int parse_error(const char *doc, struct s3xml_error *err)
{
	size_t len = strlen(doc);
	char *body = exact_copy(doc, len);
	int ret = s3xml_parse_error(body, len, err);

	free(body);
	return ret;
}

static int parse_upload_id(const char *doc, char **id)
{
	size_t len = strlen(doc);
	char *body = exact_copy(doc, len);
	int ret = s3xml_parse_upload_id(body, len, id);

	free(body);
	return ret;
}

static int parse_etag(const char *doc, char *etag, size_t etag_len, struct s3xml_error *err)
{
	size_t len = strlen(doc);
	char *body = exact_copy(doc, len);
	int ret = s3xml_parse_result_etag(body, len, etag, etag_len, err);

	free(body);
	return ret;
}

/* A list filled with junk, to check that the parser resets it. */
static void poison_list(struct backend_list *l)
{
	memset(l, 0x5a, sizeof(*l));
}

static void assert_list_empty(const struct backend_list *l)
{
	ck_assert_ptr_null(l->entries);
	ck_assert_uint_eq(l->n_entries, 0);
	ck_assert_ptr_null(l->prefixes);
	ck_assert_uint_eq(l->n_prefixes, 0);
	ck_assert_ptr_null(l->next_token);
}

/* The key of every entry, in order. */
static void assert_keys(const struct backend_list *l, const char *const *keys, size_t n)
{
	ck_assert_uint_eq(l->n_entries, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(l->entries[i].key, keys[i]);
}

static void assert_prefixes(const struct backend_list *l, const char *const *p, size_t n)
{
	ck_assert_uint_eq(l->n_prefixes, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(l->prefixes[i], p[i]);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A listing of the given keys (already XML-escaped) and nothing else. */
static char *listing_of(const char *ns_attr, const char *const *keys, size_t n)
{
	size_t cap = 256;
	char *doc, *p;

	for (size_t i = 0; i < n; i++)
		cap += strlen(keys[i]) + 64;
	doc = malloc(cap);
	ck_assert_ptr_nonnull(doc);
	p = doc + sprintf(doc, XMLDECL "<ListBucketResult%s><Name>b</Name>", ns_attr);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "<Contents><Key>%s</Key><Size>1</Size></Contents>", keys[i]);
	sprintf(p, "<IsTruncated>false</IsTruncated></ListBucketResult>");
	return doc;
}

/* ------------------------------------------------------------------------ */
/* list                                                                     */

/* What AWS sends for list-type=2&delimiter=/, namespace as given. */
static char *typical_listing(const char *ns_attr)
{
	char *doc;

	ck_assert_int_ge(
	    asprintf(&doc,
	             XMLDECL
	             "<ListBucketResult%s>"
	             "<Name>bucket</Name><Prefix>photos/</Prefix><KeyCount>4</KeyCount>"
	             "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
	             "<IsTruncated>false</IsTruncated>\n"
	             "  <Contents>\n"
	             "    <Key>photos/2006/a.jpg</Key>\n"
	             "    <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
	             "    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>\n"
	             "    <Size>434234</Size>\n"
	             "    <StorageClass>STANDARD</StorageClass>\n"
	             "  </Contents>\n"
	             "  <Contents>\n"
	             "    <Key>photos/2006/b.jpg</Key>\n"
	             "    <LastModified>2023-01-02T03:04:05.678Z</LastModified>\n"
	             "    <ETag>\"0123456789abcdef0123456789abcdef-12\"</ETag>\n"
	             "    <Size>18446744073709551615</Size>\n"
	             "    <StorageClass>STANDARD</StorageClass>\n"
	             "  </Contents>\n"
	             "  <CommonPrefixes><Prefix>photos/2006/feb/</Prefix></CommonPrefixes>\n"
	             "  <CommonPrefixes><Prefix>photos/2006/jan/</Prefix></CommonPrefixes>\n"
	             "</ListBucketResult>\n",
	             ns_attr),
	    0);
	return doc;
}

static void check_typical(const struct backend_list *l)
{
	static const char *const keys[] = {"photos/2006/a.jpg", "photos/2006/b.jpg"};
	static const char *const prefixes[] = {"photos/2006/feb/", "photos/2006/jan/"};

	assert_keys(l, keys, N(keys));
	assert_prefixes(l, prefixes, N(prefixes));
	ck_assert_uint_eq(l->entries[0].st.size, 434234);
	ck_assert_int_eq(l->entries[0].st.mtime.tv_sec, 1255369830);
	ck_assert_int_eq(l->entries[0].st.mtime.tv_nsec, 0);
	ck_assert_str_eq(l->entries[0].st.etag, "fba9dede5f27731c9771645a39863328");
	ck_assert_uint_eq(l->entries[1].st.size, UINT64_MAX);
	ck_assert_int_eq(l->entries[1].st.mtime.tv_sec, 1672628645);
	ck_assert_int_eq(l->entries[1].st.mtime.tv_nsec, 678000000);
	ck_assert_str_eq(l->entries[1].st.etag, "0123456789abcdef0123456789abcdef-12");
	ck_assert_uint_eq(l->entries[1].st.meta, 0);
	ck_assert_ptr_null(l->next_token);
}

START_TEST(test_list_with_namespace)
{
	char *doc = typical_listing(" xmlns=\"" S3NS "\"");
	struct backend_list l;

	poison_list(&l);
	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	check_typical(&l);
	backend_list_free(&l);
	free(doc);
}
END_TEST

START_TEST(test_list_without_namespace)
{
	char *doc = typical_listing("");
	struct backend_list l;

	poison_list(&l);
	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	check_typical(&l);
	backend_list_free(&l);
	free(doc);
}
END_TEST

START_TEST(test_list_namespace_prefix)
{
	static const char doc[] = "<s3:ListBucketResult xmlns:s3=\"" S3NS "\">"
	                          "<s3:Contents><s3:Key>k</s3:Key><s3:Size>7</s3:Size>"
	                          "<s3:ETag>\"e\"</s3:ETag></s3:Contents>"
	                          "<s3:CommonPrefixes><s3:Prefix>d/</s3:Prefix></s3:CommonPrefixes>"
	                          "<s3:IsTruncated>true</s3:IsTruncated>"
	                          "<s3:NextContinuationToken>tok</s3:NextContinuationToken>"
	                          "</s3:ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.entries[0].key, "k");
	ck_assert_uint_eq(l.entries[0].st.size, 7);
	ck_assert_str_eq(l.entries[0].st.etag, "e");
	ck_assert_uint_eq(l.n_prefixes, 1);
	ck_assert_str_eq(l.prefixes[0], "d/");
	ck_assert_str_eq(l.next_token, "tok");
	backend_list_free(&l);
}
END_TEST

START_TEST(test_list_truncated)
{
	static const char doc[] =
	    "<ListBucketResult xmlns=\"" S3NS "\"><IsTruncated>true</IsTruncated>"
	    "<Contents><Key>a</Key></Contents>"
	    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
	    "NextContinuationToken>"
	    "<KeyCount>1</KeyCount></ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	backend_list_free(&l);
	assert_list_empty(&l);
}
END_TEST

/* A truncated page with no way to ask for the next one is an error. */
START_TEST(test_list_truncated_without_token)
{
	static const char doc[] = "<ListBucketResult xmlns=\"" S3NS "\">"
	                          "<Contents><Key>a</Key></Contents>"
	                          "<IsTruncated>true</IsTruncated></ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), -EINVAL);
	ck_assert_ptr_null(l.next_token);
	backend_list_free(&l); /* documented as safe after an error */
	assert_list_empty(&l);
}
END_TEST

/* A token on a last page (or an unknown IsTruncated value) is ignored. */
START_TEST(test_list_token_only_when_truncated)
{
	static const char *const docs[] = {
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>",
	    "<ListBucketResult><NextContinuationToken>t</NextContinuationToken>"
	    "</ListBucketResult>",
	    "<ListBucketResult><IsTruncated>no</IsTruncated>"
	    "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>",
	    /* A ContinuationToken (the one sent) is not the next one. */
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<ContinuationToken>t</ContinuationToken></ListBucketResult>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		struct backend_list l;

		ck_assert_msg(parse_list(docs[i], 0, &l) == 0, "doc %zu", i);
		assert_list_empty(&l);
		backend_list_free(&l);
	}
}
END_TEST

START_TEST(test_list_strip_prefix)
{
	static const char doc[] = "<ListBucketResult xmlns=\"" S3NS "\">"
	                          "<Contents><Key>mnt/</Key><Size>0</Size></Contents>"
	                          "<Contents><Key>mnt/a</Key><Size>1</Size></Contents>"
	                          "<Contents><Key>mn</Key><Size>2</Size></Contents>"
	                          "<Contents><Key>mnt/dir/b c</Key><Size>3</Size></Contents>"
	                          "<CommonPrefixes><Prefix>mnt/</Prefix></CommonPrefixes>"
	                          "<CommonPrefixes><Prefix>mnt/sub/</Prefix></CommonPrefixes>"
	                          "<CommonPrefixes><Prefix>m/</Prefix></CommonPrefixes>"
	                          "<IsTruncated>false</IsTruncated></ListBucketResult>";
	static const char *const keys[] = {"", "a", "dir/b c"};
	static const char *const prefixes[] = {"sub/"};
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 4, &l), 0);
	/* "mn" is shorter than the prefix: dropped; "mnt/" itself: "". */
	assert_keys(&l, keys, N(keys));
	ck_assert_uint_eq(l.entries[0].st.size, 0);
	ck_assert_uint_eq(l.entries[1].st.size, 1);
	ck_assert_uint_eq(l.entries[2].st.size, 3);
	/* A common prefix that would become "" names no directory. */
	assert_prefixes(&l, prefixes, N(prefixes));
	backend_list_free(&l);

	/* Stripping more than any key holds leaves nothing. */
	ck_assert_int_eq(parse_list(doc, 1000, &l), 0);
	assert_list_empty(&l);
	backend_list_free(&l);
}
END_TEST

/* The prefix is counted in bytes, also when it ends inside UTF-8. */
START_TEST(test_list_strip_utf8_prefix)
{
	static const char doc[] = "<ListBucketResult><Contents><Key>\xc3\xa9t\xc3\xa9/x</Key>"
	                          "</Contents></ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 6, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.entries[0].key, "x");
	backend_list_free(&l);
}
END_TEST

START_TEST(test_list_escaped_keys)
{
	static const char doc[] = "<ListBucketResult xmlns=\"" S3NS "\">"
	                          "<Contents><Key>a&amp;b</Key></Contents>"
	                          "<Contents><Key>&lt;tag&gt;</Key></Contents>"
	                          "<Contents><Key>&quot;q&quot; &apos;s&apos;</Key></Contents>"
	                          "<Contents><Key>&#65;&#x42;&#x43;</Key></Contents>"
	                          "<Contents><Key><![CDATA[<raw & cdata>]]></Key></Contents>"
	                          "<Contents><Key>&amp;amp;</Key></Contents>"
	                          "<Contents><Key>100% ok+1=2?#[]</Key></Contents>"
	                          "<CommonPrefixes><Prefix>x&amp;y/</Prefix></CommonPrefixes>"
	                          "<IsTruncated>true</IsTruncated>"
	                          "<NextContinuationToken>a&amp;b=c</NextContinuationToken>"
	                          "</ListBucketResult>";
	static const char *const keys[] = {
	    "a&b", "<tag>", "\"q\" 's'", "ABC", "<raw & cdata>", "&amp;", "100% ok+1=2?#[]",
	};
	static const char *const prefixes[] = {"x&y/"};
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	assert_keys(&l, keys, N(keys));
	assert_prefixes(&l, prefixes, N(prefixes));
	ck_assert_str_eq(l.next_token, "a&b=c");
	backend_list_free(&l);
}
END_TEST

START_TEST(test_list_utf8_keys)
{
	static const char doc[] = "<ListBucketResult xmlns=\"" S3NS "\">"
	                          "<Contents><Key>donn\xc3\xa9\x65s/\xe6\x97\xa5\xe6\x9c\xac</Key>"
	                          "</Contents>"
	                          "<Contents><Key>\xf0\x9f\x98\x80.bin</Key></Contents>"
	                          "<Contents><Key>&#x1F600;&#xe9;</Key></Contents>"
	                          "<CommonPrefixes><Prefix>\xce\xb1\xce\xb2/</Prefix>"
	                          "</CommonPrefixes></ListBucketResult>";
	static const char *const keys[] = {
	    "donn\xc3\xa9\x65s/\xe6\x97\xa5\xe6\x9c\xac",
	    "\xf0\x9f\x98\x80.bin",
	    "\xf0\x9f\x98\x80\xc3\xa9",
	};
	static const char *const prefixes[] = {"\xce\xb1\xce\xb2/"};
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	assert_keys(&l, keys, N(keys));
	assert_prefixes(&l, prefixes, N(prefixes));
	backend_list_free(&l);
}
END_TEST

/* A document in another encoding still yields UTF-8 keys. */
START_TEST(test_list_latin1_document)
{
	static const char doc[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
	                          "<ListBucketResult><Contents><Key>caf\xe9</Key></Contents>"
	                          "</ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.entries[0].key, "caf\xc3\xa9");
	backend_list_free(&l);
}
END_TEST

/* Spaces are part of a key: never trimmed, never dropped as blanks. */
START_TEST(test_list_keys_with_spaces)
{
	static const char doc[] = "<ListBucketResult xmlns=\"" S3NS "\">\n"
	                          "  <Contents><Key>a b</Key></Contents>\n"
	                          "  <Contents><Key> lead</Key></Contents>\n"
	                          "  <Contents><Key>trail </Key></Contents>\n"
	                          "  <Contents><Key> </Key></Contents>\n"
	                          "  <Contents><Key>   </Key></Contents>\n"
	                          "  <Contents><Key>dir / x</Key></Contents>\n"
	                          "  <Contents><Key>tab\there</Key></Contents>\n"
	                          "  <CommonPrefixes><Prefix> /</Prefix></CommonPrefixes>\n"
	                          "</ListBucketResult>\n";
	static const char *const keys[] = {
	    "a b", " lead", "trail ", " ", "   ", "dir / x", "tab\there",
	};
	static const char *const prefixes[] = {" /"};
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	assert_keys(&l, keys, N(keys));
	assert_prefixes(&l, prefixes, N(prefixes));
	backend_list_free(&l);
}
END_TEST

START_TEST(test_list_empty)
{
	static const char *const docs[] = {
	    XMLDECL "<ListBucketResult xmlns=\"" S3NS "\"><Name>bucket</Name><Prefix>none/</Prefix>"
	            "<KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
	            "<IsTruncated>false</IsTruncated></ListBucketResult>",
	    "<ListBucketResult/>",
	    "<ListBucketResult xmlns=\"" S3NS "\"></ListBucketResult>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		struct backend_list l;

		poison_list(&l);
		ck_assert_msg(parse_list(docs[i], 0, &l) == 0, "doc %zu", i);
		assert_list_empty(&l);
		backend_list_free(&l);
	}
}
END_TEST

/* Only the fields present are set; the others stay zero / empty. */
START_TEST(test_list_missing_fields)
{
	static const char doc[] =
	    "<ListBucketResult>"
	    "<Contents><Key>only-key</Key></Contents>"
	    "<Contents><Key>bad-time</Key><LastModified>yesterday</LastModified>"
	    "<Size>12</Size><ETag>unquoted</ETag></Contents>"
	    "<Contents><Key>zone</Key><LastModified>2009-10-12T17:50:30+00:00</LastModified>"
	    "</Contents>"
	    "</ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 3);
	ck_assert_uint_eq(l.entries[0].st.size, 0);
	ck_assert_int_eq(l.entries[0].st.mtime.tv_sec, 0);
	ck_assert_int_eq(l.entries[0].st.mtime.tv_nsec, 0);
	ck_assert_str_eq(l.entries[0].st.etag, "");
	ck_assert_uint_eq(l.entries[0].st.meta, 0);
	ck_assert_uint_eq(l.entries[1].st.size, 12);
	ck_assert_int_eq(l.entries[1].st.mtime.tv_sec, 0);
	ck_assert_int_eq(l.entries[1].st.mtime.tv_nsec, 0);
	ck_assert_str_eq(l.entries[1].st.etag, "unquoted");
	ck_assert_int_eq(l.entries[2].st.mtime.tv_sec, 1255369830);
	backend_list_free(&l);
}
END_TEST

/* An ETag longer than a backend may hold is cut, not overflowed. */
START_TEST(test_list_long_etag)
{
	char etag[300], *doc;
	struct backend_list l;

	memset(etag, 'e', sizeof(etag) - 1);
	etag[sizeof(etag) - 1] = '\0';
	ck_assert_int_ge(asprintf(&doc,
	                          "<ListBucketResult><Contents><Key>k</Key><ETag>\"%s\"</ETag>"
	                          "</Contents></ListBucketResult>",
	                          etag),
	                 0);
	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_uint_eq(strlen(l.entries[0].st.etag), BACKEND_ETAG_MAX - 1);
	ck_assert_int_eq(strspn(l.entries[0].st.etag, "e"), BACKEND_ETAG_MAX - 1);
	backend_list_free(&l);
	free(doc);
}
END_TEST

/* A Contents without a Key cannot be listed: the page is rejected. */
START_TEST(test_list_contents_without_key)
{
	static const char doc[] = "<ListBucketResult><Contents><Key>a</Key></Contents>"
	                          "<Contents><Size>1</Size></Contents></ListBucketResult>";
	static const char doc2[] = "<ListBucketResult><CommonPrefixes></CommonPrefixes>"
	                           "</ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), -EINVAL);
	backend_list_free(&l);
	assert_list_empty(&l);
	ck_assert_int_eq(parse_list(doc2, 0, &l), -EINVAL);
	backend_list_free(&l);
}
END_TEST

/* Keys are only read where S3 puts them, not from nested look-alikes. */
START_TEST(test_list_ignores_other_elements)
{
	static const char doc[] = "<ListBucketResult>"
	                          "<Owner><Contents><Key>nested</Key></Contents></Owner>"
	                          "<Contents><Key>real</Key><Owner><ID>x</ID></Owner></Contents>"
	                          "<!-- <Contents><Key>comment</Key></Contents> -->"
	                          "<?pi <Contents><Key>pi</Key></Contents>?>"
	                          "<contents><Key>lower</Key></contents>"
	                          "<Unknown>ignored</Unknown>"
	                          "</ListBucketResult>";
	static const char *const keys[] = {"real"};
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	assert_keys(&l, keys, N(keys));
	backend_list_free(&l);
}
END_TEST

/* Well-formed documents that are not a ListObjectsV2 result. */
START_TEST(test_list_not_a_listing)
{
	static const char *const docs[] = {
	    XMLDECL "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not "
	            "exist</Message></Error>",
	    "<InitiateMultipartUploadResult><UploadId>x</UploadId></InitiateMultipartUploadResult>",
	    "<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>",
	    "<Wrapper><ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>"
	    "</Wrapper>",
	    "<listbucketresult/>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		struct backend_list l;

		poison_list(&l);
		ck_assert_msg(parse_list(docs[i], 0, &l) == -EINVAL, "doc %zu", i);
		assert_list_empty(&l);
		backend_list_free(&l);
	}
}
END_TEST

START_TEST(test_list_garbage)
{
	static const char *const docs[] = {
	    "",
	    " ",
	    "not xml at all",
	    "{\"json\": true}",
	    "<ListBucketResult>",
	    "<ListBucketResult><Contents><Key>a</Key></Contents>",
	    "<ListBucketResult><Contents><Key>a</Contents></ListBucketResult>",
	    "<ListBucketResult></ListBucketResult><ListBucketResult/>",
	    "<ListBucketResult><Contents><Key>a&b</Key></Contents></ListBucketResult>",
	    "<ListBucketResult><Contents><Key>&undefined;</Key></Contents></ListBucketResult>",
	    "<ListBucketResult><Contents><Key>&#0;</Key></Contents></ListBucketResult>",
	    "<ListBucketResult><Contents><Key>\x01</Key></Contents></ListBucketResult>",
	    "<ListBucketResult><Contents><Key>\xff\xfe</Key></Contents></ListBucketResult>",
	    "\xef\xbb\xbf\xef\xbb\xbf<ListBucketResult/>",
	    "<<<>>>",
	    "<?xml version=\"1.0\"?>",
	    "<!-- only a comment -->",
	};
	static const unsigned char binary[] = {0x00, 0x01, 0x3c, 0x00, 0xff, 0x80, 0x3e, 0x0a};
	struct backend_list l;

	for (size_t i = 0; i < N(docs); i++) {
		poison_list(&l);
		ck_assert_msg(parse_list(docs[i], 0, &l) == -EINVAL, "doc %zu", i);
		assert_list_empty(&l);
		backend_list_free(&l);
	}
	ck_assert_int_eq(s3xml_parse_list((const char *)binary, sizeof(binary), 0, &l), -EINVAL);
	backend_list_free(&l);
	ck_assert_int_eq(s3xml_parse_list(NULL, 0, 0, &l), -EINVAL);
	assert_list_empty(&l);
	ck_assert_int_eq(s3xml_parse_list("<ListBucketResult/>", 0, 0, &l), -EINVAL);
	assert_list_empty(&l);
}
END_TEST

/* Only len bytes are read: what follows in memory is not part of the body. */
START_TEST(test_list_respects_length)
{
	static const char doc[] = "<ListBucketResult><Contents><Key>a</Key></Contents>"
	                          "</ListBucketResult>";
	static const char junk[] = "<Contents><Key>junk</Key></Contents>";
	size_t len = strlen(doc);
	char *body = malloc(len + sizeof(junk));
	struct backend_list l;

	ck_assert_ptr_nonnull(body);
	memcpy(body, doc, len);
	memcpy(body + len, junk, sizeof(junk));
	ck_assert_int_eq(s3xml_parse_list(body, len, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.entries[0].key, "a");
	backend_list_free(&l);
	/* Cut short, the same document is not well-formed. */
	ck_assert_int_eq(s3xml_parse_list(body, len - 1, 0, &l), -EINVAL);
	backend_list_free(&l);
	free(body);
}
END_TEST

/* A full page: 1000 entries and 200 common prefixes, in order. */
START_TEST(test_list_huge)
{
	size_t cap = 1 << 20, used;
	char *doc = malloc(cap);
	struct backend_list l;

	ck_assert_ptr_nonnull(doc);
	used = (size_t)snprintf(doc, cap,
	                        XMLDECL "<ListBucketResult xmlns=\"" S3NS "\"><Name>b</Name>"
	                                "<Prefix>data/</Prefix><KeyCount>1200</KeyCount>"
	                                "<MaxKeys>1200</MaxKeys><IsTruncated>true</IsTruncated>");
	for (int i = 0; i < 1000; i++) {
		used += (size_t)snprintf(doc + used, cap - used,
		                         "<Contents><Key>data/file-%04d &amp; more</Key>"
		                         "<LastModified>2020-01-01T00:00:%02d.%03dZ</LastModified>"
		                         "<ETag>&quot;%032x&quot;</ETag><Size>%d</Size>"
		                         "<StorageClass>STANDARD</StorageClass></Contents>",
		                         i, i % 60, i, (unsigned)i * 2654435761u, i * 1000);
	}
	for (int i = 0; i < 200; i++) {
		used += (size_t)snprintf(doc + used, cap - used,
		                         "<CommonPrefixes><Prefix>data/dir-%03d/</Prefix>"
		                         "</CommonPrefixes>",
		                         i);
	}
	used += (size_t)snprintf(doc + used, cap - used,
	                         "<NextContinuationToken>next-page</NextContinuationToken>"
	                         "</ListBucketResult>");
	ck_assert_uint_lt(used, cap);

	ck_assert_int_eq(parse_list(doc, 5, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1000);
	ck_assert_uint_eq(l.n_prefixes, 200);
	for (int i = 0; i < 1000; i++) {
		char key[64], etag[64];

		snprintf(key, sizeof(key), "file-%04d & more", i);
		snprintf(etag, sizeof(etag), "%032x", (unsigned)i * 2654435761u);
		ck_assert_str_eq(l.entries[i].key, key);
		ck_assert_str_eq(l.entries[i].st.etag, etag);
		ck_assert_uint_eq(l.entries[i].st.size, (uint64_t)i * 1000);
		ck_assert_int_eq(l.entries[i].st.mtime.tv_sec, 1577836800 + i % 60);
		ck_assert_int_eq(l.entries[i].st.mtime.tv_nsec, (long)i * 1000000L);
	}
	for (int i = 0; i < 200; i++) {
		char p[32];

		snprintf(p, sizeof(p), "dir-%03d/", i);
		ck_assert_str_eq(l.prefixes[i], p);
	}
	ck_assert_str_eq(l.next_token, "next-page");
	backend_list_free(&l);
	free(doc);
}
END_TEST

/* Many keys of every kind, built by listing_of(). */
START_TEST(test_list_many_escaped)
{
	static const char *const raw[] = {"&amp;", "&lt;", "&gt;", "\xc3\xa9", " ", "x"};
	static const char *const cooked[] = {"&", "<", ">", "\xc3\xa9", " ", "x"};
	const char *keys[600];
	char bufs[600][16], want[600][32];
	struct backend_list l;
	char *doc;

	for (size_t i = 0; i < N(keys); i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "k%zu%s", i, raw[i % N(raw)]);
		snprintf(want[i], sizeof(want[i]), "k%zu%s", i, cooked[i % N(cooked)]);
		keys[i] = bufs[i];
	}
	doc = listing_of("", keys, N(keys));
	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, N(keys));
	for (size_t i = 0; i < N(keys); i++)
		ck_assert_str_eq(l.entries[i].key, want[i]);
	backend_list_free(&l);
	free(doc);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* error                                                                    */

START_TEST(test_error_full)
{
	static const char doc[] =
	    XMLDECL "<Error><Code>AuthorizationHeaderMalformed</Code>"
	            "<Message>The authorization header is malformed; the region 'us-east-1' is "
	            "wrong; expecting 'eu-west-1'</Message>"
	            "<Region>eu-west-1</Region>"
	            "<RequestId>4442587FB7D0A2F9</RequestId>"
	            "<HostId>aGVsbG8=</HostId></Error>";
	struct s3xml_error e;

	memset(&e, 'x', sizeof(e));
	ck_assert_int_eq(parse_error(doc, &e), 0);
	ck_assert_str_eq(e.code, "AuthorizationHeaderMalformed");
	ck_assert_str_eq(e.message, "The authorization header is malformed; the region "
	                            "'us-east-1' is wrong; expecting 'eu-west-1'");
	ck_assert_str_eq(e.request_id, "4442587FB7D0A2F9");
	ck_assert_str_eq(e.region, "eu-west-1");
}
END_TEST

START_TEST(test_error_namespace_and_escapes)
{
	static const char doc[] = "<Error xmlns=\"" S3NS "\"><Code>NoSuchKey</Code>"
	                          "<Message>Key &quot;a&amp;b&quot; &lt;gone&gt;</Message>"
	                          "<Key>a&amp;b</Key><RequestId>R1</RequestId></Error>";
	struct s3xml_error e;

	memset(&e, 'x', sizeof(e));
	ck_assert_int_eq(parse_error(doc, &e), 0);
	ck_assert_str_eq(e.code, "NoSuchKey");
	ck_assert_str_eq(e.message, "Key \"a&b\" <gone>");
	ck_assert_str_eq(e.request_id, "R1");
	ck_assert_str_eq(e.region, ""); /* absent fields are empty */
}
END_TEST

START_TEST(test_error_code_only)
{
	struct s3xml_error e;

	memset(&e, 'x', sizeof(e));
	ck_assert_int_eq(parse_error("<Error><Code>SlowDown</Code></Error>", &e), 0);
	ck_assert_str_eq(e.code, "SlowDown");
	ck_assert_str_eq(e.message, "");
	ck_assert_str_eq(e.request_id, "");
	ck_assert_str_eq(e.region, "");
}
END_TEST

START_TEST(test_error_without_code)
{
	static const char *const docs[] = {
	    "<Error><Message>no code</Message><RequestId>R</RequestId></Error>",
	    "<Error><Code></Code><Message>empty code</Message></Error>",
	    "<Error><Code/></Error>",
	    "<Error/>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		struct s3xml_error e;

		ck_assert_msg(parse_error(docs[i], &e) == -EINVAL, "doc %zu", i);
		ck_assert_str_eq(e.code, "");
	}
}
END_TEST

START_TEST(test_error_not_an_error)
{
	static const char *const docs[] = {
	    "<ListBucketResult><Code>X</Code></ListBucketResult>",
	    "<Errors><Error><Code>X</Code></Error></Errors>",
	    "<error><Code>X</Code></error>",
	    "",
	    "garbage",
	    "<Error><Code>X</Code>",
	    "<html><body>502 Bad Gateway</body></html>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		struct s3xml_error e, zero;

		memset(&e, 'x', sizeof(e));
		memset(&zero, 0, sizeof(zero));
		ck_assert_msg(parse_error(docs[i], &e) == -EINVAL, "doc %zu", i);
		ck_assert_msg(memcmp(&e, &zero, sizeof(e)) == 0, "doc %zu: err not cleared", i);
	}
}
END_TEST

/* Fields longer than their arrays are cut and stay NUL-terminated. */
START_TEST(test_error_long_fields)
{
	char big[1024], *doc;
	struct s3xml_error e;

	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_ge(asprintf(&doc,
	                          "<Error><Code>%s</Code><Message>%s</Message>"
	                          "<RequestId>%s</RequestId><Region>%s</Region></Error>",
	                          big, big, big, big),
	                 0);
	ck_assert_int_eq(parse_error(doc, &e), 0);
	ck_assert_uint_eq(strlen(e.code), sizeof(e.code) - 1);
	ck_assert_uint_eq(strlen(e.message), sizeof(e.message) - 1);
	ck_assert_uint_eq(strlen(e.request_id), sizeof(e.request_id) - 1);
	ck_assert_uint_eq(strlen(e.region), sizeof(e.region) - 1);
	free(doc);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* result                                                                   */

START_TEST(test_upload_id)
{
	static const char *const docs[] = {
	    XMLDECL
	    "<InitiateMultipartUploadResult xmlns=\"" S3NS "\">"
	    "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
	    "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
	    "</InitiateMultipartUploadResult>",
	    "<InitiateMultipartUploadResult><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5t"
	    "MnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		char *id = (char *)1;

		ck_assert_int_eq(parse_upload_id(docs[i], &id), 0);
		ck_assert_ptr_nonnull(id);
		ck_assert_str_eq(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
		free(id);
	}
}
END_TEST

START_TEST(test_upload_id_escaped)
{
	char *id = NULL;

	ck_assert_int_eq(parse_upload_id("<InitiateMultipartUploadResult><UploadId>a&amp;b~c.d"
	                                 "</UploadId></InitiateMultipartUploadResult>",
	                                 &id),
	                 0);
	ck_assert_str_eq(id, "a&b~c.d");
	free(id);
}
END_TEST

START_TEST(test_upload_id_invalid)
{
	static const char *const docs[] = {
	    "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>",
	    "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
	    "<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>",
	    "<CompleteMultipartUploadResult><UploadId>x</UploadId></CompleteMultipartUploadResult>",
	    "<Error><Code>AccessDenied</Code><UploadId>x</UploadId></Error>",
	    "",
	    "garbage",
	    "<InitiateMultipartUploadResult><UploadId>x</UploadId>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		char *id = (char *)1;

		ck_assert_msg(parse_upload_id(docs[i], &id) == -EINVAL, "doc %zu", i);
		ck_assert_ptr_null(id);
	}
}
END_TEST

START_TEST(test_etag_copy_result)
{
	static const char doc[] =
	    XMLDECL "<CopyObjectResult xmlns=\"" S3NS "\">"
	            "<LastModified>2009-10-28T22:32:00.000Z</LastModified>"
	            "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
	            "</CopyObjectResult>";
	char etag[BACKEND_ETAG_MAX];
	struct s3xml_error e;

	memset(&e, 'x', sizeof(e));
	ck_assert_int_eq(parse_etag(doc, etag, sizeof(etag), &e), 0);
	ck_assert_str_eq(etag, "9b2cf535f27731c974343645a3985328");
	ck_assert_str_eq(e.code, "");
}
END_TEST

START_TEST(test_etag_complete_result)
{
	static const char doc[] =
	    XMLDECL "<CompleteMultipartUploadResult xmlns=\"" S3NS "\">"
	            "<Location>http://example-bucket.s3.amazonaws.com/Example-Object</Location>"
	            "<Bucket>example-bucket</Bucket><Key>Example-Object</Key>"
	            "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
	            "</CompleteMultipartUploadResult>";
	char etag[BACKEND_ETAG_MAX];
	struct s3xml_error e;

	ck_assert_int_eq(parse_etag(doc, etag, sizeof(etag), &e), 0);
	ck_assert_str_eq(etag, "3858f62230ac3c915f300c664312c11f-9");
}
END_TEST

/* An unquoted ETag is taken as it is; a long one is cut to fit. */
START_TEST(test_etag_unquoted_and_short_buffer)
{
	static const char doc[] = "<CopyObjectResult><ETag>abcdef</ETag></CopyObjectResult>";
	static const char quoted[] = "<CopyObjectResult><ETag>\"abcdef\"</ETag></CopyObjectResult>";
	char etag[BACKEND_ETAG_MAX];
	struct s3xml_error e;

	ck_assert_int_eq(parse_etag(doc, etag, sizeof(etag), &e), 0);
	ck_assert_str_eq(etag, "abcdef");
	memset(etag, 'x', sizeof(etag));
	ck_assert_int_eq(parse_etag(quoted, etag, 4, &e), 0);
	ck_assert_str_eq(etag, "abc");
	ck_assert_int_eq(etag[4], 'x'); /* nothing written past etag_len */
	memset(etag, 'x', sizeof(etag));
	ck_assert_int_eq(parse_etag(quoted, etag, 1, &e), 0);
	ck_assert_str_eq(etag, "");
	ck_assert_int_eq(etag[1], 'x');
}
END_TEST

/* S3 may answer 200 and put an <Error> in the body of a copy or completion. */
START_TEST(test_etag_error_with_200)
{
	static const char doc[] =
	    XMLDECL "\n\n\n<Error><Code>InternalError</Code>"
	            "<Message>We encountered an internal error. Please try again.</Message>"
	            "<RequestId>656c76696e6727732072657175657374</RequestId>"
	            "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>"
	            "</Error>";
	char etag[BACKEND_ETAG_MAX];
	struct s3xml_error e;

	memset(etag, 'x', sizeof(etag));
	ck_assert_int_eq(parse_etag(doc, etag, sizeof(etag), &e), -EIO);
	ck_assert_str_eq(etag, "");
	ck_assert_str_eq(e.code, "InternalError");
	ck_assert_str_eq(e.message, "We encountered an internal error. Please try again.");
	ck_assert_str_eq(e.request_id, "656c76696e6727732072657175657374");

	/* Still an error, even when S3 leaves out the code. */
	ck_assert_int_eq(
	    parse_etag("<Error xmlns=\"" S3NS "\"><ETag>x</ETag></Error>", etag, sizeof(etag), &e),
	    -EIO);
	ck_assert_str_eq(e.code, "");
	ck_assert_str_eq(etag, "");
}
END_TEST

START_TEST(test_etag_invalid)
{
	static const char *const docs[] = {
	    "<CopyObjectResult><LastModified>2009-10-28T22:32:00.000Z</LastModified>"
	    "</CopyObjectResult>",
	    "<CopyObjectResult><Inner><ETag>\"x\"</ETag></Inner></CopyObjectResult>",
	    "",
	    "garbage",
	    "<CopyObjectResult><ETag>\"x\"</ETag>",
	};

	for (size_t i = 0; i < N(docs); i++) {
		char etag[BACKEND_ETAG_MAX];
		struct s3xml_error e;

		memset(etag, 'x', sizeof(etag));
		ck_assert_msg(parse_etag(docs[i], etag, sizeof(etag), &e) == -EINVAL, "doc %zu", i);
		ck_assert_str_eq(etag, "");
		ck_assert_str_eq(e.code, "");
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* complete                                                                 */

/* Parse body back and check it lists parts 1..n with these ETags. */
static void check_complete_body(const char *body, char *const *etags, size_t n)
{
	xmlDocPtr doc;
	xmlNodePtr root, part;
	size_t i = 0;

	ck_assert_ptr_nonnull(body);
	doc = xmlReadMemory(body, (int)strlen(body), "complete.xml", NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	ck_assert_msg(doc != NULL, "not well-formed: %s", body);
	root = xmlDocGetRootElement(doc);
	ck_assert_ptr_nonnull(root);
	ck_assert_str_eq((const char *)root->name, "CompleteMultipartUpload");
	for (part = root->children; part != NULL; part = part->next) {
		xmlNodePtr c, num = NULL, tag = NULL;
		char want[128], *s;

		if (part->type != XML_ELEMENT_NODE)
			continue;
		ck_assert_str_eq((const char *)part->name, "Part");
		ck_assert_uint_lt(i, n);
		for (c = part->children; c != NULL; c = c->next) {
			if (c->type != XML_ELEMENT_NODE)
				continue;
			if (strcmp((const char *)c->name, "PartNumber") == 0)
				num = c;
			else if (strcmp((const char *)c->name, "ETag") == 0)
				tag = c;
			else
				ck_abort_msg("unexpected element %s", (const char *)c->name);
		}
		ck_assert_ptr_nonnull(num);
		ck_assert_ptr_nonnull(tag);
		s = (char *)xmlNodeGetContent(num);
		snprintf(want, sizeof(want), "%zu", i + 1);
		ck_assert_str_eq(s, want);
		xmlFree(s);
		s = (char *)xmlNodeGetContent(tag);
		snprintf(want, sizeof(want), "\"%s\"", etags[i]);
		ck_assert_str_eq(s, want);
		xmlFree(s);
		i++;
	}
	ck_assert_uint_eq(i, n);
	xmlFreeDoc(doc);
}

START_TEST(test_complete_one_part)
{
	char *etags[] = {"d41d8cd98f00b204e9800998ecf8427e"};
	char *body = s3xml_complete_body(etags, 1);

	check_complete_body(body, etags, 1);
	free(body);
}
END_TEST

START_TEST(test_complete_three_parts)
{
	char *etags[] = {"c", "A0B1C2D3E4F5", "0123456789abcdef0123456789abcdef-3"};
	char *body = s3xml_complete_body(etags, 3);

	check_complete_body(body, etags, 3);
	/* The order is the order given, not sorted. */
	ck_assert_ptr_nonnull(strstr(body, "A0B1C2"));
	ck_assert(strstr(body, "A0B1C2") < strstr(body, "0123456789"));
	free(body);
}
END_TEST

/* Many parts with the longest ETags accepted: nothing cut off. */
START_TEST(test_complete_many_long_parts)
{
	enum { PARTS = 10000 };
	char **etags = calloc(PARTS, sizeof(*etags));
	char *body;

	ck_assert_ptr_nonnull(etags);
	for (size_t i = 0; i < PARTS; i++) {
		etags[i] = malloc(97);
		ck_assert_ptr_nonnull(etags[i]);
		memset(etags[i], "0123456789abcdef"[i % 16], 96);
		etags[i][96] = '\0';
	}
	body = s3xml_complete_body(etags, PARTS);
	check_complete_body(body, etags, PARTS);
	free(body);
	for (size_t i = 0; i < PARTS; i++)
		free(etags[i]);
	free(etags);
}
END_TEST

/* An ETag that would need escaping (or is not an ETag) gives NULL. */
START_TEST(test_complete_rejects_bad_etags)
{
	static const char *const bad[] = {
	    "ab<cd", "a&b",       "\"quoted\"", "a'b", "x>y",   "a b",
	    "tab\t", "new\nline", "\xc3\xa9",   "]]>", "ab/cd", "g",
	};
	char long_etag[98];

	for (size_t i = 0; i < N(bad); i++) {
		char *etags[3] = {"aaaa", NULL, "cccc"};

		etags[1] = (char *)bad[i];
		ck_assert_msg(s3xml_complete_body(etags, 3) == NULL, "etag \"%s\" accepted",
		              bad[i]);
		/* Also as the first and as the last part. */
		etags[0] = (char *)bad[i];
		etags[1] = "bbbb";
		ck_assert_ptr_null(s3xml_complete_body(etags, 3));
		etags[0] = "aaaa";
		etags[2] = (char *)bad[i];
		ck_assert_ptr_null(s3xml_complete_body(etags, 3));
	}
	memset(long_etag, 'a', 97);
	long_etag[97] = '\0';
	{
		char *etags[] = {long_etag};

		ck_assert_ptr_null(s3xml_complete_body(etags, 1));
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* time                                                                     */

START_TEST(test_time_valid)
{
	static const struct {
		const char *s;
		time_t sec;
		long nsec;
	} cases[] = {
	    {"2009-10-12T17:50:30.000Z", 1255369830, 0},
	    {"2009-10-12T17:50:30Z", 1255369830, 0},
	    {"2009-10-12T17:50:30+00:00", 1255369830, 0},
	    {"2009-10-12T17:50:30.123+00:00", 1255369830, 123000000},
	    {"2009-10-12T17:50:30.123Z", 1255369830, 123000000},
	    {"2009-10-12T17:50:30.5Z", 1255369830, 500000000},
	    {"2009-10-12T17:50:30.05Z", 1255369830, 50000000},
	    {"2009-10-12T17:50:30.123456789Z", 1255369830, 123456789},
	    {"2009-10-12T17:50:30.1234567891Z", 1255369830, 123456789}, /* beyond ns: cut */
	    {"1970-01-01T00:00:00Z", 0, 0},
	    {"1969-12-31T23:59:59Z", -1, 0},
	    {"2024-02-29T12:00:00Z", 1709208000, 0},
	    {"2000-02-29T00:00:00Z", 951782400, 0},
	    {"2038-01-19T03:14:08Z", 2147483648LL, 0},
	    {"9999-12-31T23:59:59.999Z", 253402300799LL, 999000000},
	};

	for (size_t i = 0; i < N(cases); i++) {
		struct timespec t = {42, 42};

		ck_assert_msg(s3xml_parse_time(cases[i].s, &t) == 0, "%s rejected", cases[i].s);
		ck_assert_msg(t.tv_sec == cases[i].sec && t.tv_nsec == cases[i].nsec,
		              "%s: got %lld.%09ld", cases[i].s, (long long)t.tv_sec, t.tv_nsec);
	}
}
END_TEST

START_TEST(test_time_malformed)
{
	static const char *const bad[] = {
	    "",
	    "2009",
	    "2009-10-12",
	    "2009-10-12T",
	    "2009-10-12T17:50",
	    "2009-10-12T17:50:30",        /* no zone: local time, ambiguous */
	    "2009-10-12 17:50:30Z",       /* space instead of T */
	    "2009-10-12t17:50:30Z",       /* lower-case t */
	    "2009-10-12T17:50:30z",       /* lower-case z */
	    "2009-10-12T17:50:30Zjunk",   /* trailing garbage */
	    "2009-10-12T17:50:30Z ",      /* trailing space */
	    "2009-10-12T17:50:30.Z",      /* dot without digits */
	    "2009-10-12T17:50:30.12aZ",   /* junk in the fraction */
	    "2009-10-12T17:50:30+01:00",  /* another zone */
	    "2009-10-12T17:50:30-00:00",  /* not how S3 writes UTC */
	    "2009-10-12T17:50:30+00:00x", /* trailing garbage */
	    " 2009-10-12T17:50:30Z",      /* leading space */
	    "+2009-10-12T17:50:30Z",      /* sign */
	    "2009-1-2T1:5:3Z",            /* unpadded */
	    "2009-10-+2T17:50:30Z",       /* sign inside */
	    "2009-10- 2T17:50:30Z",       /* space inside */
	    "2009-13-12T17:50:30Z",       /* month 13 */
	    "2009-00-12T17:50:30Z",       /* month 0 */
	    "2009-10-00T17:50:30Z",       /* day 0 */
	    "2009-10-32T17:50:30Z",       /* day 32 */
	    "2009-04-31T17:50:30Z",       /* April 31 */
	    "2023-02-29T00:00:00Z",       /* not a leap year */
	    "1900-02-29T00:00:00Z",       /* not a leap year either */
	    "2009-10-12T24:00:00Z",       /* hour 24 */
	    "2009-10-12T17:60:00Z",       /* minute 60 */
	    "2009-10-12T17:50:61Z",       /* second 61 */
	    "20091012T175030Z",           /* basic format */
	    "Mon, 12 Oct 2009 17:50:30 GMT",
	    "yesterday",
	};

	for (size_t i = 0; i < N(bad); i++) {
		struct timespec t = {42, 42};

		ck_assert_msg(s3xml_parse_time(bad[i], &t) == -EINVAL, "\"%s\" accepted", bad[i]);
		/* A failed parse leaves *t as it was. */
		ck_assert_int_eq(t.tv_sec, 42);
		ck_assert_int_eq(t.tv_nsec, 42);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* safety                                                                   */

/* Write s into a new file under $TMPDIR; its path goes to path. */
static void write_temp(const char *s, char *path, size_t len)
{
	const char *dir = getenv("TMPDIR");
	FILE *f;
	int fd;

	snprintf(path, len, "%s/check_s3xml.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(s, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* No key of l (nor its token) holds marker. */
static void assert_no_marker(const struct backend_list *l, const char *marker)
{
	for (size_t i = 0; i < l->n_entries; i++)
		ck_assert_msg(strstr(l->entries[i].key, marker) == NULL,
		              "external content in key \"%s\"", l->entries[i].key);
	for (size_t i = 0; i < l->n_prefixes; i++)
		ck_assert_ptr_null(strstr(l->prefixes[i], marker));
	if (l->next_token != NULL)
		ck_assert_ptr_null(strstr(l->next_token, marker));
}

/* Parse doc (any result is fine) and check nothing holds marker. */
static void parse_expect_no_marker(const char *doc, const char *marker)
{
	struct backend_list l;
	struct s3xml_error e;
	char etag[BACKEND_ETAG_MAX], *id = NULL;

	parse_list(doc, 0, &l);
	assert_no_marker(&l, marker);
	backend_list_free(&l);
	parse_error(doc, &e);
	ck_assert_ptr_null(strstr(e.code, marker));
	ck_assert_ptr_null(strstr(e.message, marker));
	parse_upload_id(doc, &id);
	if (id != NULL)
		ck_assert_ptr_null(strstr(id, marker));
	free(id);
	parse_etag(doc, etag, sizeof(etag), &e);
	ck_assert_ptr_null(strstr(etag, marker));
}

/* XXE: an external entity naming a local file is not read into a key. */
START_TEST(test_xxe_file_entity)
{
	static const char *const templates[] = {
	    /* General external entity used in content. */
	    XMLDECL "<!DOCTYPE ListBucketResult [<!ENTITY xxe SYSTEM \"file://%s\">]>"
	            "<ListBucketResult><Contents><Key>a&xxe;b</Key></Contents>"
	            "<IsTruncated>true</IsTruncated>"
	            "<NextContinuationToken>&xxe;</NextContinuationToken>"
	            "<CommonPrefixes><Prefix>&xxe;/</Prefix></CommonPrefixes>"
	            "</ListBucketResult>",
	    /* The same for the other documents. */
	    "<!DOCTYPE Error [<!ENTITY xxe SYSTEM \"file://%s\">]>"
	    "<Error><Code>C&xxe;</Code><Message>&xxe;</Message></Error>",
	    "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file://%s\">]>"
	    "<InitiateMultipartUploadResult><UploadId>u&xxe;</UploadId>"
	    "</InitiateMultipartUploadResult>",
	    "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file://%s\">]>"
	    "<CopyObjectResult><ETag>&xxe;</ETag></CopyObjectResult>",
	    /* Plain path instead of a URL. */
	    "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"%s\">]>"
	    "<ListBucketResult><Contents><Key>&xxe;</Key></Contents></ListBucketResult>",
	};
	char path[4096], *doc;

	write_temp("S3XML-SECRET-MARKER\n", path, sizeof(path));
	for (size_t i = 0; i < N(templates); i++) {
		ck_assert_int_ge(asprintf(&doc, templates[i], path), 0);
		parse_expect_no_marker(doc, "S3XML-SECRET-MARKER");
		free(doc);
	}
	unlink(path);

	/* The classic, if the system has the file. */
	if (access("/etc/passwd", R_OK) == 0) {
		parse_expect_no_marker(XMLDECL "<!DOCTYPE ListBucketResult [<!ENTITY xxe SYSTEM "
		                               "\"file:///etc/passwd\">]><ListBucketResult>"
		                               "<Contents><Key>&xxe;</Key></Contents>"
		                               "</ListBucketResult>",
		                       "root:");
	}
}
END_TEST

/* Neither an external DTD nor an external parameter entity is loaded. */
START_TEST(test_xxe_external_dtd)
{
	char path[4096], *doc;

	write_temp("<!ENTITY leak \"S3XML-SECRET-MARKER\">\n", path, sizeof(path));
	ck_assert_int_ge(asprintf(&doc,
	                          "<!DOCTYPE ListBucketResult SYSTEM \"file://%s\">"
	                          "<ListBucketResult><Contents><Key>a&leak;b</Key></Contents>"
	                          "</ListBucketResult>",
	                          path),
	                 0);
	parse_expect_no_marker(doc, "S3XML-SECRET-MARKER");
	free(doc);
	ck_assert_int_ge(
	    asprintf(&doc,
	             "<!DOCTYPE ListBucketResult [<!ENTITY %% ext SYSTEM \"file://%s\">"
	             " %%ext;]>"
	             "<ListBucketResult><Contents><Key>a&leak;b</Key></Contents>"
	             "</ListBucketResult>",
	             path),
	    0);
	parse_expect_no_marker(doc, "S3XML-SECRET-MARKER");
	free(doc);
	unlink(path);
}
END_TEST

/*
 * No network: documents pointing at a local listening socket make no
 * connection to it.  (A parser that did connect would also hang waiting
 * for an answer and hit the test timeout.)
 */
START_TEST(test_xxe_no_network)
{
	static const char *const templates[] = {
	    "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"http://127.0.0.1:%d/entity\">]>"
	    "<ListBucketResult><Contents><Key>&xxe;</Key></Contents></ListBucketResult>",
	    "<!DOCTYPE ListBucketResult SYSTEM \"http://127.0.0.1:%d/dtd\">"
	    "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
	    "<!DOCTYPE r [<!ENTITY %% p SYSTEM \"http://127.0.0.1:%d/pe\"> %%p;]>"
	    "<ListBucketResult/>",
	    "<ListBucketResult xmlns:xi=\"http://www.w3.org/2001/XInclude\">"
	    "<Contents><Key><xi:include href=\"http://127.0.0.1:%d/xi\" parse=\"text\"/>"
	    "</Key></Contents></ListBucketResult>",
	};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct pollfd pfd;
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);

	for (size_t i = 0; i < N(templates); i++) {
		char *doc;

		ck_assert_int_ge(asprintf(&doc, templates[i], port), 0);
		parse_expect_no_marker(doc, "127.0.0.1");
		free(doc);
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	ck_assert_msg(poll(&pfd, 1, 100) == 0, "the parser connected to the network");
	close(fd);
}
END_TEST

/* "Billion laughs": nested internal entities do not blow up. */
START_TEST(test_entity_expansion_bomb)
{
	char doc[4096], *p = doc;
	struct backend_list l;
	struct timespec t0, t1;
	int ret;

	p += sprintf(p, "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY l0 \"lollollollol\">");
	for (int i = 1; i < 10; i++) {
		p += sprintf(p, "<!ENTITY l%d \"", i);
		for (int j = 0; j < 10; j++)
			p += sprintf(p, "&l%d;", i - 1);
		p += sprintf(p, "\">");
	}
	sprintf(p, "]><ListBucketResult><Contents><Key>&l9;</Key></Contents>"
	           "<CommonPrefixes><Prefix>&l9;</Prefix></CommonPrefixes></ListBucketResult>");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = parse_list(doc, 0, &l);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert(ret == 0 || ret == -EINVAL);
	for (size_t i = 0; i < l.n_entries; i++)
		ck_assert_uint_lt(strlen(l.entries[i].key), 1u << 20);
	for (size_t i = 0; i < l.n_prefixes; i++)
		ck_assert_uint_lt(strlen(l.prefixes[i]), 1u << 20);
	backend_list_free(&l);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 2);
}
END_TEST

/* Internal entities are harmless and expand as XML says. */
START_TEST(test_internal_entity)
{
	static const char doc[] = "<!DOCTYPE r [<!ENTITY e \"inner\">]>"
	                          "<ListBucketResult><Contents><Key>a&e;b</Key></Contents>"
	                          "</ListBucketResult>";
	struct backend_list l;

	ck_assert_int_eq(parse_list(doc, 0, &l), 0);
	ck_assert_uint_eq(l.n_entries, 1);
	ck_assert_str_eq(l.entries[0].key, "ainnerb");
	backend_list_free(&l);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *s3xml_suite(void)
{
	Suite *s = suite_create("s3xml");
	TCase *tc;

	tc = tcase_create("list");
	tcase_add_test(tc, test_list_with_namespace);
	tcase_add_test(tc, test_list_without_namespace);
	tcase_add_test(tc, test_list_namespace_prefix);
	tcase_add_test(tc, test_list_truncated);
	tcase_add_test(tc, test_list_truncated_without_token);
	tcase_add_test(tc, test_list_token_only_when_truncated);
	tcase_add_test(tc, test_list_strip_prefix);
	tcase_add_test(tc, test_list_strip_utf8_prefix);
	tcase_add_test(tc, test_list_escaped_keys);
	tcase_add_test(tc, test_list_utf8_keys);
	tcase_add_test(tc, test_list_latin1_document);
	tcase_add_test(tc, test_list_keys_with_spaces);
	tcase_add_test(tc, test_list_empty);
	tcase_add_test(tc, test_list_missing_fields);
	tcase_add_test(tc, test_list_long_etag);
	tcase_add_test(tc, test_list_contents_without_key);
	tcase_add_test(tc, test_list_ignores_other_elements);
	tcase_add_test(tc, test_list_not_a_listing);
	tcase_add_test(tc, test_list_garbage);
	tcase_add_test(tc, test_list_respects_length);
	tcase_add_test(tc, test_list_huge);
	tcase_add_test(tc, test_list_many_escaped);
	suite_add_tcase(s, tc);

	tc = tcase_create("error");
	tcase_add_test(tc, test_error_full);
	tcase_add_test(tc, test_error_namespace_and_escapes);
	tcase_add_test(tc, test_error_code_only);
	tcase_add_test(tc, test_error_without_code);
	tcase_add_test(tc, test_error_not_an_error);
	tcase_add_test(tc, test_error_long_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("result");
	tcase_add_test(tc, test_upload_id);
	tcase_add_test(tc, test_upload_id_escaped);
	tcase_add_test(tc, test_upload_id_invalid);
	tcase_add_test(tc, test_etag_copy_result);
	tcase_add_test(tc, test_etag_complete_result);
	tcase_add_test(tc, test_etag_unquoted_and_short_buffer);
	tcase_add_test(tc, test_etag_error_with_200);
	tcase_add_test(tc, test_etag_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("complete");
	tcase_add_test(tc, test_complete_one_part);
	tcase_add_test(tc, test_complete_three_parts);
	tcase_add_test(tc, test_complete_many_long_parts);
	tcase_add_test(tc, test_complete_rejects_bad_etags);
	tcase_set_timeout(tc, 30); /* 10000 parts under ASan */
	suite_add_tcase(s, tc);

	tc = tcase_create("time");
	tcase_add_test(tc, test_time_valid);
	tcase_add_test(tc, test_time_malformed);
	suite_add_tcase(s, tc);

	tc = tcase_create("safety");
	tcase_add_test(tc, test_xxe_file_entity);
	tcase_add_test(tc, test_xxe_external_dtd);
	tcase_add_test(tc, test_xxe_no_network);
	tcase_add_test(tc, test_entity_expansion_bomb);
	tcase_add_test(tc, test_internal_entity);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int failed;

	xmlInitParser();
	failed = suites_run(s3xml_suite());
	xmlCleanupParser();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
