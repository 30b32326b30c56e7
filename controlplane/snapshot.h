/*
 * controlplane/snapshot.h - what snapshot.c offers the rest of the control plane (registry snapshot).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_SNAPSHOT_H
#define FD_CP_SNAPSHOT_H

#include "controlplane/cp.h"

/* <control socket's directory>/<segment name>.registry.json */
void cp_snapshot_path(const cp_t *cp, char *out, size_t outlen);
void cp_snapshot_write(cp_t *cp);
/* A rebuilt segment: register every valid entry of the snapshot (health UNKNOWN, drain flag and
 * register.yaml origin kept). Returns how many were carried over; says what happened in the log. */
unsigned cp_snapshot_restore(cp_t *cp);
int cp_snapshot_start(cp_t *cp); /* rewrites the file within a second of each change of the table */
void cp_snapshot_stop(cp_t *cp); /* writes it a last time */

#endif
