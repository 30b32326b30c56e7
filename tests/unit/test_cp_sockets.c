/*
 * tests/unit/test_cp_sockets.c - the public listening socket (controlplane/listen.c) and the
 * "is another CP alive on this control socket" test (controlplane/ctlsock.c).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "controlplane/cp.h"
#include "controlplane/ctlsock.h"
#include "controlplane/listen.h"

static unsigned port_of(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* A port that was free a moment ago. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    unsigned p = port_of(fd);
    close(fd);
    return p;
}

static int sockopt(int fd, int opt)
{
    int v = -1;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, opt, &v, &len), 0);
    return v;
}

Test(cp_listen, binds_listens_reuseaddr_not_reuseport)
{
    char err[256] = "";
    unsigned port = free_port();
    int fd = cp_listen_open("127.0.0.1", port, err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert_eq(port_of(fd), port);
    cr_assert(sockopt(fd, SO_ACCEPTCONN));
    cr_assert(sockopt(fd, SO_REUSEADDR));
    cr_assert_eq(sockopt(fd, SO_REUSEPORT), 0);
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    cr_assert(cp_listen_is_ours(fd, port));
    cr_assert(!cp_listen_is_ours(fd, port == 65535 ? 1 : port + 1));
    close(fd);
}

Test(cp_listen, busy_port_is_a_go_style_error)
{
    char err[256] = "";
    unsigned port = free_port();
    int fd = cp_listen_open("127.0.0.1", port, err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert_eq(cp_listen_open("127.0.0.1", port, err, sizeof(err)), -1);
    char want[64];
    snprintf(want, sizeof(want), "listen tcp 127.0.0.1:%u: bind: ", port);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert(strstr(err, "in use") != NULL, "%s", err);
    close(fd);
}

Test(cp_listen, bad_address)
{
    char err[256] = "";
    cr_assert_eq(cp_listen_open("not-an-ip", 80, err, sizeof(err)), -1);
    cr_assert(strstr(err, "invalid listen address") != NULL, "%s", err);
}

Test(cp_listen, ipv6_and_wildcard)
{
    char err[256] = "";
    unsigned port = free_port();
    int fd = cp_listen_open("::1", port, err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert(cp_listen_is_ours(fd, port));
    close(fd);
    fd = cp_listen_open("", port, err, sizeof(err));
    cr_assert_geq(fd, 0, "%s", err);
    cr_assert(cp_listen_is_ours(fd, port));
    close(fd);
}

Test(cp_listen, not_a_listener)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(!cp_listen_is_ours(fd, 80));
    close(fd);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert(!cp_listen_is_ours(p[0], 80));
    close(p[0]);
    close(p[1]);
}

static void unix_path(char *out, size_t len)
{
    snprintf(out, len, "/tmp/test_cp_ctl_%d.sock", (int)getpid());
    unlink(out);
}

Test(cp_ctlsock, live_listener_is_in_use_stale_file_is_not)
{
    char path[108];
    unix_path(path, sizeof(path));
    cr_assert(!cp_ctlsock_in_use(path), "absent");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert(cp_ctlsock_in_use(path));
    close(fd); /* the file stays: a crashed CP's leftover */
    cr_assert_eq(access(path, F_OK), 0);
    cr_assert(!cp_ctlsock_in_use(path));
    unlink(path);
}

Test(cp_ctlsock, too_long_path_is_not_in_use)
{
    char path[300];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    cr_assert(!cp_ctlsock_in_use(path));
}
