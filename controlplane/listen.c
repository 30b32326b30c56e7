/*
 * controlplane/listen.c - the public listening socket.
 *
 * Bound once by the CP and kept for its whole life; every DP polls it (inherited at spawn), so
 * replacing a DP never drops a queued connection. Deliberately not SO_REUSEPORT: separate
 * reuseport sockets lose the connections queued on the one that closes (docs/architecture.md, "Processes").
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controlplane/cp.h"
#include "controlplane/listen.h"

#define LISTEN_BACKLOG 4096

int cp_listen_open(const char *addr, unsigned port, char *err, size_t errlen)
{
    char serv[8];
    snprintf(serv, sizeof(serv), "%u", port);
    const char *host = (addr != NULL && addr[0] != '\0') ? addr : NULL;
    const char *shown = host ? host : "";
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen tcp %s:%u: invalid listen address: %s", shown, port, gai_strerror(rc));
        return -1;
    }
    const char *call = "socket";
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1;
        call = "setsockopt";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0) {
            call = "bind";
            if (bind(fd, res->ai_addr, res->ai_addrlen) == 0) {
                call = "listen";
                if (listen(fd, LISTEN_BACKLOG) == 0) {
                    freeaddrinfo(res);
                    return fd;
                }
            }
        }
    }
    int e = errno;
    snprintf(err, errlen, "listen tcp %s:%u: %s: %s", shown, port, call, strerror(e));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    errno = e;
    return -1;
}

bool cp_listen_is_ours(int fd, unsigned port)
{
    int type = 0, acc = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return false;
    len = sizeof(acc);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
        return false;
    struct sockaddr_storage ss;
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port) == port;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == port;
    return false;
}
