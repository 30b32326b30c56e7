/*
 * controlplane/args.h - what args.c offers: the command line, parsed (pure) and explained.
 */
#ifndef FD_CP_ARGS_H
#define FD_CP_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *port; /* NULL = not given (strings point into argv) */
    const char *dp_drain_secs;
    const char *config_path;
    const char *shm_name;
    const char *control_socket;
    const char *dp_binary;
    bool splitwise;
    bool rebuild_shm;
    bool help;
    bool version;
} cp_args_t;

/* Go-flag style: -name or --name, value as the next argument or after '='; booleans accept
 * =true/=false. Returns 0, or -1 with the reason in err (the caller prints usage, exits 2). */
int cp_args_parse(int argc, char **argv, cp_args_t *out, char *err, size_t errlen);
void cp_usage(FILE *f, const char *prog);
/* "1".."65535" -> port, else 0. */
unsigned cp_parse_port(const char *s);

#endif
