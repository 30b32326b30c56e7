/*
 * controlplane/errmsg.h - what errmsg.c offers the control plane's parsers (metrics_poll.c,
 * models_poll.c): a reason formatted into the caller's bounded buffer, with the -1 a failing
 * parse returns, so a parser reports a failure in one statement.
 */
#ifndef FD_CP_ERRMSG_H
#define FD_CP_ERRMSG_H

#include <stddef.h>

/* vsnprintf(err, errlen, fmt, ...) (truncated to errlen), then -1. */
__attribute__((format(printf, 3, 4))) int cp_errmsg(char *err, size_t errlen, const char *fmt, ...);

#endif
