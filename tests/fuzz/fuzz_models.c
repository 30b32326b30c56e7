/*
 * tests/fuzz/fuzz_models.c - libFuzzer target: an instance's GET /v1/models answer
 * (cp_models_parse), which the control plane reads from every instance; what it accepts must
 * fit the slot's bounds (at most SHM_INSTANCE_MODELS ids, each NUL-terminated within its field).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controlplane/cp.h"
#include "controlplane/models_poll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    shm_model_info_t m[SHM_INSTANCE_MODELS];
    unsigned n;
    char err[256];
    if (cp_models_parse((const char *)data, size, m, SHM_INSTANCE_MODELS, &n, err, sizeof err) == 0) {
        if (n > SHM_INSTANCE_MODELS)
            abort();
        for (unsigned i = 0; i < n; i++)
            if (memchr(m[i].id, '\0', sizeof m[i].id) == NULL || m[i].id[0] == '\0' ||
                memchr(m[i].owned_by, '\0', sizeof m[i].owned_by) == NULL)
                abort();
    }
    return 0;
}
