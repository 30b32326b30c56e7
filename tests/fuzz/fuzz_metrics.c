/*
 * tests/fuzz/fuzz_metrics.c - libFuzzer target: an instance's /metrics page (cp_metrics_parse),
 * which the control plane reads from every instance.
 */
#include <stdint.h>

#include "controlplane/cp.h"
#include "controlplane/metrics_poll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp_metrics_sample_t s;
    char err[256];
    (void)cp_metrics_parse((const char *)data, size, &s, err, sizeof err);
    return 0;
}
