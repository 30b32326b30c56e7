/*
 * tests/fuzz/fuzz_response.c - libFuzzer target for the upstream client's response parsing: the
 * strict head check (common/uresp.c) on the input as a whole response head, and picohttpparser's
 * chunked decoder (which the client runs in place) on what follows a head the check accepted.
 * Whatever an instance sends must yield a head, "need more", or a refusal with a reason; never a
 * crash, an out-of-bounds read, or a framing outside the enum.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/uresp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly `size` bytes so that ASan sees any read past the input */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct phr_header headers[100];
    uresp_t r = {.headers = headers, .num_headers = 100};
    int rlen = uresp_parse(buf, size, 64 * 1024, size && (data[0] & 1), &r);
    if (rlen == -1 && r.error == NULL)
        abort(); /* a refusal always says why */
    if (rlen > 0 && (size_t)rlen <= size && !r.informational) {
        if (r.framing > UC_BODY_CHUNKED || r.num_headers > 100)
            abort();
        if (r.framing == UC_BODY_CHUNKED) {
            struct phr_chunked_decoder d = {.consume_trailer = 1};
            size_t n = size - (size_t)rlen;
            ssize_t left = phr_decode_chunked(&d, buf + rlen, &n);
            if (n > size - (size_t)rlen || (left >= 0 && (size_t)left > size - (size_t)rlen))
                abort();
        }
    }
    free(buf);
    return 0;
}
