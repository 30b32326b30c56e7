/*
 * controlplane/upgrade.h - what upgrade.c offers the rest of the control plane (hot upgrade).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_UPGRADE_H
#define FD_CP_UPGRADE_H

#include "controlplane/cp.h"

#define CP_UPGRADE_READY_TIMEOUT_MS 30000
#define CP_UPGRADE_KILL_GRACE_MS    5000

/* Start an upgrade to `binary` (NULL: the configured one). Returns 0, or an HTTP status (409: one
 * is running, 400: bad binary, 503: shutting down or spawn failed) with the reason in err. */
int cp_upgrade_start(cp_t *cp, const char *binary, unsigned drain_secs, unsigned ready_timeout_ms,
                     const char *trigger, char *err, size_t errlen);
bool cp_upgrade_running(const cp_t *cp);
const char *cp_upgrade_state_name(cp_upgrade_state_t s);
struct json_object *cp_upgrade_json(const cp_t *cp);
/* The old DP's drain report (control socket). */
void cp_upgrade_on_report(cp_t *cp, pid_t pid, uint64_t drained, uint64_t cut, uint64_t idle_closed,
                          uint64_t drain_ms);
void cp_upgrade_abort(cp_t *cp, const char *why); /* the CP stops */

#endif
