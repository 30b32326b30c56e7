/*
 * tests/fuzz/fuzz_config.c - libFuzzer target: config.yaml (fd_config_load), read from a memfd
 * so that the loader's own file checks run too.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++)
        fd_log_set_level(FD_LOG_ERROR); /* unknown keys are WARN lines: keep the run's output readable */
    int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fd_config_t c;
    fd_config_defaults(&c);
    if (fd_config_load(&c, path, err, sizeof err) == 0) {
        shm_config_t s;
        fd_config_to_shm(&c, &s);
    }
    close(fd);
    return 0;
}
