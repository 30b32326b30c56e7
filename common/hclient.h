/*
 * common/hclient.h - a small blocking HTTP/1.1 client with a hard deadline, for the places that
 * may block: fdctl (talking to the control socket), fd-sim's registration thread, the
 * launcher, the data plane's last report after its loops stopped. Never used on an event loop
 * (those use common/uclient.h). Responses are checked by the same strict parser (common/uresp.h).
 *
 * Target is "host:port" (IPv4/IPv6 literal or localhost) or "unix:/path/to.sock".
 * The whole exchange (connect, send, receive) is bounded by timeout_ms; the response body is
 * bounded by max_body bytes (larger answers fail).
 */
#ifndef FD_COMMON_HCLIENT_H
#define FD_COMMON_HCLIENT_H

#include <stddef.h>

typedef struct {
    int status; /* HTTP status, 0 if no response */
    char *body; /* malloc'd, NUL-terminated; NULL if none */
    size_t body_len;
    char error[128]; /* reason when the call failed */
} hc_response_t;

/* Returns 0 when a complete response was read (any status), -1 otherwise (see resp->error). */
int hc_request(const char *target, const char *method, const char *path, const char *content_type,
               const char *body, size_t body_len, unsigned timeout_ms, size_t max_body, hc_response_t *resp);
void hc_response_free(hc_response_t *resp);

#endif
