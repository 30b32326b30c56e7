/*
 * common/admintoken.c - reading, handing over and checking the admin token (common/admintoken.h).
 */
#include "common/admintoken.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/reply.h"

int fd_admin_token_read(const char *path, char *out, char *why, size_t whylen)
{
    int fd = fd_open_regular(path, why, whylen);
    if (fd < 0)
        return -1;
    struct stat st;
    char buf[FD_ADMIN_TOKEN_MAX + 64];
    ssize_t n = -1;
    if (fstat(fd, &st) != 0)
        snprintf(why, whylen, "%s", strerror(errno));
    else if (st.st_mode & 007)
        snprintf(why, whylen, "mode %03o lets every local user read the token; chmod o-rwx it",
                 (unsigned)(st.st_mode & 0777));
    else if ((n = read(fd, buf, sizeof buf)) < 0)
        snprintf(why, whylen, "%s", strerror(errno));
    close(fd);
    if (n < 0)
        return -1;
    if (st.st_mode & 070)
        LOG_WARN("%s: mode %03o: the group may read the admin token", path, (unsigned)(st.st_mode & 0777));
    size_t a = 0, b = (size_t)n;
    while (a < b && strchr(" \t\r\n", buf[a]))
        a++;
    while (b > a && strchr(" \t\r\n", buf[b - 1]))
        b--;
    if ((size_t)n == sizeof buf || b - a >= FD_ADMIN_TOKEN_MAX) {
        snprintf(why, whylen, "the token is longer than %d characters", FD_ADMIN_TOKEN_MAX - 1);
        return -1;
    }
    if (b - a < FD_ADMIN_TOKEN_MIN) {
        snprintf(why, whylen, "the token is shorter than %d characters", FD_ADMIN_TOKEN_MIN);
        return -1;
    }
    for (size_t i = a; i < b; i++)
        if (buf[i] <= ' ' || buf[i] > '~') {
            snprintf(why, whylen, "the token must be printable ASCII without blanks");
            return -1;
        }
    memcpy(out, buf + a, b - a);
    out[b - a] = '\0';
    return 0;
}

void fd_admin_token_export(const char *token)
{
    if (token[0])
        setenv(FD_ADMIN_TOKEN_ENV, token, 1);
    else
        unsetenv(FD_ADMIN_TOKEN_ENV);
}

bool fd_admin_token_equal(const char *token, const char *given, size_t given_len)
{
    size_t len = strlen(token);
    unsigned char diff = len != given_len;
    /* every byte of the token is looked at whatever the presented one holds */
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

bool fd_admin_authorize(h2o_req_t *req)
{
    const char *token = getenv(FD_ADMIN_TOKEN_ENV);
    if (token == NULL || token[0] == '\0')
        return true;
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (at >= 0) {
        h2o_iovec_t v = req->headers.entries[at].value;
        if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) &&
            h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, at) < 0 &&
            fd_admin_token_equal(token, v.base + 7, v.len - 7))
            return true;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    static const char body[] =
        "{\"code\":401,\"msg\":\"unauthorized: send Authorization: Bearer <admin token>\"}";
    fd_reply_json(req, 401, body, sizeof body - 1);
    return false;
}
