/*
 * common/netacl.c - CIDR allow-lists and refused address classes (common/netacl.h).
 *
 * Everything is compared in the 128-bit form, IPv4 mapped into ::ffff:0:0/96, so one matcher
 * serves both families and an IPv4 rule also covers the mapped spelling of the same address.
 */
#include "common/netacl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* IP literal -> 16 bytes; *is_v4 says whether it was (or maps) an IPv4 address. */
static bool to_bytes(const char *ip, uint8_t out[16], bool *is_v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        memcpy(out, v4_mapped_prefix, 12);
        memcpy(out + 12, &a4, 4);
        *is_v4 = true;
        return true;
    }
    if (inet_pton(AF_INET6, ip, out) != 1)
        return false;
    *is_v4 = memcmp(out, v4_mapped_prefix, 12) == 0;
    return true;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static int parse_entry(fd_cidr_t *c, const char *s, size_t len)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    bool v4;
    if (!to_bytes(buf, c->addr, &v4))
        return -1;
    unsigned max = v4 ? 32 : 128, bits = max;
    if (slash) {
        char *end;
        const char *p = slash + 1;
        if (*p < '0' || *p > '9')
            return -1;
        unsigned long b = strtoul(p, &end, 10);
        if (*end != '\0' || b > max)
            return -1;
        bits = (unsigned)b;
    }
    c->bits = v4 ? bits + 96 : bits;
    /* a host part set under the mask is a typo more often than an intent */
    fd_cidr_t masked = *c;
    for (unsigned i = c->bits; i < 128; i++)
        masked.addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return memcmp(masked.addr, c->addr, 16) == 0 ? 0 : -1;
}

int fd_acl_parse(fd_acl_t *acl, const char *text, char *err, size_t errlen)
{
    acl->n = 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, ", \t");
        if (*p == '\0')
            return 0;
        size_t len = strcspn(p, ", \t");
        if (acl->n == FD_ACL_MAX) {
            snprintf(err, errlen, "more than %d entries", FD_ACL_MAX);
            return -1;
        }
        if (parse_entry(&acl->e[acl->n], p, len) < 0) {
            snprintf(err, errlen, "\"%.*s\" is not an address or CIDR block (address/prefix, host bits zero)",
                     (int)(len > 64 ? 64 : len), p);
            return -1;
        }
        acl->n++;
        p += len;
    }
}

bool fd_acl_allows_bytes(const fd_acl_t *acl, const uint8_t addr[16])
{
    if (acl->n == 0)
        return true;
    for (unsigned i = 0; i < acl->n; i++)
        if (prefix_eq(addr, acl->e[i].addr, acl->e[i].bits))
            return true;
    return false;
}

bool fd_acl_allows(const fd_acl_t *acl, const char *ip)
{
    uint8_t a[16];
    bool v4;
    if (acl->n == 0)
        return true;
    return to_bytes(ip, a, &v4) && fd_acl_allows_bytes(acl, a);
}

const char *fd_host_refusal(const char *ip)
{
    uint8_t a[16];
    bool v4;
    if (!to_bytes(ip, a, &v4))
        return NULL; /* not ours to judge: the payload validation names a bad address */
    if (v4) {
        const uint8_t *b = a + 12;
        if (b[0] == 0)
            return "unspecified"; /* 0.0.0.0/8: "this network" */
        if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
            return "broadcast";
        if ((b[0] & 0xf0) == 224)
            return "multicast";
        if (b[0] == 169 && b[1] == 254)
            return "link-local";
        return NULL;
    }
    static const uint8_t zero[16];
    if (memcmp(a, zero, 16) == 0)
        return "unspecified";
    if (a[0] == 0xff)
        return "multicast";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local";
    return NULL;
}

void fd_acl_warn_if_register_open(const char *listen_addr, const fd_acl_t *register_allow)
{
    uint8_t a[16];
    bool v4;
    if (register_allow->n != 0)
        return;
    bool loopback =
        to_bytes(listen_addr, a, &v4) && (v4 ? a[12] == 127 : (memcmp(a, (uint8_t[16]){[15] = 1}, 16) == 0));
    if (!loopback)
        LOG_WARN("POST /register is open to every client that reaches %s: anyone can add instances; set "
                 "auth.register-allow (docs/security.md)",
                 listen_addr[0] ? listen_addr : "every interface");
}
