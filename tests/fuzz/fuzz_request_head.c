/*
 * tests/fuzz/fuzz_request_head.c - libFuzzer target for the data plane's reading of a client's
 * raw request head (dataplane/framing.c): where the head ends, searched incrementally as the
 * request-read sweep does (dataplane/server.c), and the framing check on a complete head. The
 * incremental search must agree with a search of the whole input on every complete head, and
 * nothing may read past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly `size` bytes so that ASan sees any read past the input */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    int whole = dp_request_head_len(buf, size, 0);
    if (whole > (int)size || whole < -2 || whole == 0)
        abort();
    /* The part an earlier sweep saw incomplete: after it, only the end of the head is searched
     * for, so a malformed head may "need more" until its end arrives, or be refused for a broken
     * line end before a search from scratch has seen enough (h2o reads it the same way); a
     * complete head must get the whole search's length either way. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (dp_request_head_len(buf, cut, 0) == -2) {
        int inc = dp_request_head_len(buf, size, cut);
        if ((inc > 0 || whole > 0) && inc != whole)
            abort();
    }
    if (whole > 0)
        (void)dp_framing_error(buf, (size_t)whole);
    free(buf);
    return 0;
}
