/*
 * dataplane/framing.c - refuse ambiguous request body framing (see framing.h).
 */
#include <strings.h>

#include "common/uresp.h"
#include "dataplane/framing.h"

/* picohttpparser's request tokenizer, exported by libh2o-evloop (no header is installed) */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

/* h2o's H2O_MAX_HEADERS: a head h2o accepted has no more lines than this */
#define FRAMING_MAX_HEADERS 100

static int is_name(const struct phr_header *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

int dp_request_head_len(const char *buf, size_t len, size_t last_len)
{
    struct phr_header hdrs[FRAMING_MAX_HEADERS];
    size_t n = FRAMING_MAX_HEADERS, mlen, plen;
    const char *method, *path;
    int minor;
    return phr_parse_request(buf, len, &method, &mlen, &path, &plen, &minor, hdrs, &n, last_len);
}

const char *dp_framing_error(const char *head, size_t len)
{
    struct phr_header hdrs[FRAMING_MAX_HEADERS];
    size_t n = FRAMING_MAX_HEADERS, mlen, plen;
    const char *method, *path;
    int minor;
    if (phr_parse_request(head, len, &method, &mlen, &path, &plen, &minor, hdrs, &n, 0) != (int)len)
        return "malformed request head";
    unsigned cl = 0, te = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_name(&hdrs[i], "content-length", 14))
            cl++;
        else if (is_name(&hdrs[i], "transfer-encoding", 17))
            te++;
    }
    if (cl > 1)
        return "more than one Content-Length header";
    if (cl && te)
        return "both Content-Length and Transfer-Encoding";
    if (te > 1)
        return "more than one Transfer-Encoding header";
    return NULL;
}
