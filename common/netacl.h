/*
 * common/netacl.h - address rules for access control: CIDR allow-lists (auth.register-allow,
 * auth.instance-allow) and the address classes an instance's host_ip may never be.
 *
 * Contract: addresses are IP literals (IPv4, or IPv6 without brackets); an IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is judged as its IPv4 address, so a rule cannot be sidestepped by
 * writing the same host the other way. No allocation, no system call.
 */
#ifndef FD_COMMON_NETACL_H
#define FD_COMMON_NETACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FD_ACL_MAX 32

typedef struct {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    unsigned bits;    /* prefix length over the 128-bit form */
} fd_cidr_t;

typedef struct {
    unsigned n; /* 0 = the list is not set (everything allowed) */
    fd_cidr_t e[FD_ACL_MAX];
} fd_acl_t;

/* Parse "10.0.0.0/8, 127.0.0.1, ::1/128" (comma or blank separated; a bare address is a host
 * route). Returns 0, or -1 with the offending entry in err. An empty string is an unset list. */
int fd_acl_parse(fd_acl_t *acl, const char *text, char *err, size_t errlen);

/* Is the IP literal `ip` inside the list? An unset list allows everything; an unparsable
 * address is outside every set list. */
bool fd_acl_allows(const fd_acl_t *acl, const char *ip);

/* Same for an address already in 16-byte form (IPv4 as ::ffff:a.b.c.d). */
bool fd_acl_allows_bytes(const fd_acl_t *acl, const uint8_t addr[16]);

/* The start-up WARN of docs/security.md: /register open to everyone on a public address. */
void fd_acl_warn_if_register_open(const char *listen_addr, const fd_acl_t *register_allow);

/* Why `ip` may never be an instance's address - "unspecified", "broadcast", "multicast",
 * "link-local" - or NULL when its class is fine. */
const char *fd_host_refusal(const char *ip);

#endif
