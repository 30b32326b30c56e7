/*
 * tests/fuzz/fuzz_register_payload.c - libFuzzer target: a POST /register body
 * (fd_instance_parse_body) in both modes, then the host_ip rules the control plane adds.
 */
#include <stdint.h>

#include "common/instance_info.h"
#include "common/netacl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int splitwise = 0; splitwise < 2; splitwise++) {
        fd_instance_info_t info;
        char msg[256];
        if (fd_instance_parse_body((const char *)data, size, splitwise, &info, msg, sizeof msg) == 0)
            (void)fd_host_refusal(info.host);
    }
    return 0;
}
