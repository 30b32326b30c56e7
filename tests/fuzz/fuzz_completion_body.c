/*
 * tests/fuzz/fuzz_completion_body.c - libFuzzer target: a completion request body as the data
 * plane scans it (dp_parse_body, with and without prompt extraction). The prompt's code points,
 * counted while it is unescaped, must be what dp_codepoints counts in the text.
 */
#include <stdint.h>
#include <stdlib.h>

#include "dataplane/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int want_prompt = 0; want_prompt < 2; want_prompt++) {
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        dp_body_t body;
        if (dp_parse_body(&pool, (const char *)data, size, want_prompt, &body) == 0 &&
            body.prompt.codepoints != dp_codepoints(body.prompt.text, body.prompt.len))
            abort();
        h2o_mem_clear_pool(&pool);
    }
    return 0;
}
