/*
 * dataplane/framing.h - is a client request's body framing unambiguous?
 *
 * h2o 2.2's HTTP/1 server takes the first Content-Length (or the last Transfer-Encoding) and
 * drops the others before the handler sees the headers, so a request with two Content-Length
 * lines, or Content-Length and Transfer-Encoding together, is read one way here and maybe
 * another way by a proxy in front: the bytes left over would run as a second, smuggled request
 * (RFC 9112 6.3: such a message must be refused). The raw request head is still in the
 * connection's input buffer when the handler runs; this re-tokenizes it (picohttpparser, as h2o
 * did) and counts the framing header lines.
 */
#ifndef FD_DP_FRAMING_H
#define FD_DP_FRAMING_H

#include <stddef.h>

/* NULL when the head at `head` (len bytes, the whole head up to its empty line) carries at most
 * one Content-Length or Transfer-Encoding line in total; else why it is refused. A head that
 * does not parse is refused too (h2o parsed it, so that would mean it is not the head). */
const char *dp_framing_error(const char *head, size_t len);

/* The length of the request head at buf once it is complete (> 0), -2 while it is not, -1 when
 * it cannot be a request head. last_len: how many bytes an earlier call already saw incomplete
 * (only what follows them is searched for the end of the head). */
int dp_request_head_len(const char *buf, size_t len, size_t last_len);

#endif
