/*
 * common/admintoken.h - the admin token of auth.admin-token-file: read by the control plane at
 * start, handed to its data planes through the environment (they inherit it across exec and
 * never touch the file), and checked on every state-changing HTTP endpoint but /register.
 *
 * Contract: the file holds one token (surrounding blanks and newlines are trimmed), 16 to
 * FD_ADMIN_TOKEN_MAX - 1 printable characters; a file others may read is refused, one the
 * group may read is accepted with a WARN. The check compares in time independent of where the
 * presented token differs.
 */
#ifndef FD_COMMON_ADMINTOKEN_H
#define FD_COMMON_ADMINTOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#define FD_ADMIN_TOKEN_ENV "FD_ROUTER_ADMIN_TOKEN"
#define FD_ADMIN_TOKEN_MAX 256
#define FD_ADMIN_TOKEN_MIN 16

/* Read the token from path into out (FD_ADMIN_TOKEN_MAX bytes). 0, or -1 with the reason. */
int fd_admin_token_read(const char *path, char *out, char *why, size_t whylen);

/* Publish the token for data planes started from now on ("" removes it). */
void fd_admin_token_export(const char *token);

/* True when no token is configured, or req carries "Authorization: Bearer <token>". Otherwise
 * it has answered 401 with a JSON error, and the caller only returns. */
bool fd_admin_authorize(h2o_req_t *req);

/* Constant-time equality of a presented credential with the token. */
bool fd_admin_token_equal(const char *token, const char *given, size_t given_len);

#endif
