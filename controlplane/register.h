/*
 * controlplane/register.h - what register.c offers the rest of the control plane (/register and
 * register.yaml). Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_REGISTER_H
#define FD_CP_REGISTER_H

#include "controlplane/cp.h"

void cp_register_handle(cp_t *cp, h2o_req_t *req, const char *body, size_t len);
/* Answer every /register still waiting (shutdown) and cancel its probes. */
void cp_register_abort_all(cp_t *cp);

typedef enum {
    CP_RY_OK = 0,
    CP_RY_READ_ERROR,  /* "Failed to read YAML file <path>: <err>" */
    CP_RY_PARSE_ERROR, /* "Failed to unmarshal YAML file <path>: <err>" */
    CP_RY_EMPTY,       /* "No instances found in config file <path>" */
} cp_register_yaml_rc_t;

/* Convert a register.yaml document to the JSON array of its `instances:` items. Plain scalars
 * are typed as YAML 1.2's core schema does (int, float, bool, null); quoted ones stay strings. */
cp_register_yaml_rc_t cp_register_yaml_parse(const char *text, size_t len, struct json_object **items,
                                             char *err, size_t errlen);
cp_register_yaml_rc_t cp_register_yaml_read(const char *path, struct json_object **items, char *err,
                                            size_t errlen);
/* Insert every valid item as a static instance (LIVE, health UNKNOWN). Logs as the Go router. */
void cp_register_load_file(cp_t *cp, const char *path);

#endif
