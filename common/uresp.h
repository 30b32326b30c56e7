/*
 * common/uresp.h - the strict HTTP/1.1 response-head check of the upstream client
 * (common/uclient.h), apart from any socket so that it can be unit-tested and fuzzed.
 *
 * The head is tokenized by picohttpparser (exported by libh2o; its public signatures are
 * declared below since no header is installed). On top of it, uresp_parse() decides how the
 * body is framed and refuses what an honest HTTP/1.1 server never sends and a lenient parser
 * would guess at: a Content-Length that is not 1*DIGIT (-1, +5, 0x5, "5 ", "5,5", empty,
 * oversized), more than one Content-Length, Content-Length together with Transfer-Encoding, a
 * transfer coding other than chunked, 101 Switching Protocols (the router never asks for an
 * upgrade), header line folding, a head larger than the caller's bound.
 */
#ifndef FD_COMMON_URESP_H
#define FD_COMMON_URESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* picohttpparser's public API, as exported by libh2o-evloop */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg,
                       size_t *msg_len, struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

typedef enum { UC_BODY_NONE, UC_BODY_UNTIL_CLOSE, UC_BODY_LENGTH, UC_BODY_CHUNKED } uc_framing_t;

/* Content-Length values above this are refused (no instance answer is a terabyte). */
#define URESP_MAX_CONTENT_LENGTH (1ULL << 40)

typedef struct {
    int minor_version, status;
    const char *msg;
    size_t msg_len;
    struct phr_header *headers; /* the caller's array */
    size_t num_headers;         /* in: its capacity; out: how many */
    uc_framing_t framing;
    uint64_t content_length; /* UC_BODY_LENGTH */
    bool keepalive;          /* the connection may carry another exchange after this one */
    bool informational;      /* 1xx other than 101: skip it, another head follows */
    const char *error;       /* why the head was refused (return -1) */
} uresp_t;

/* Parse one response head at buf. Returns its length (> 0), -2 when more bytes are needed (and
 * fewer than max_head arrived), -1 when it is refused (r->error says why). method_is_head: the
 * request was HEAD (no body whatever the head says). */
int uresp_parse(const char *buf, size_t len, size_t max_head, bool method_is_head, uresp_t *r);

/* A Content-Length value: 1*DIGIT, at most URESP_MAX_CONTENT_LENGTH; false otherwise. */
bool uresp_content_length(const char *v, size_t len, uint64_t *out);

#endif
