/*
 * tools/fd-sim/http.c - the HTTP exchange helpers every fd-sim handler shares (http.h): answers,
 * the probe for a client that left, the deliberate cut, and the record of a completion request.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/reply.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/http.h"

#define HEADER_KEYLEN 256

void sim_reply_json(h2o_req_t *req, int status, char *body, size_t len)
{
    if (!body) {
        fd_reply(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    fd_reply(req, status, "application/json", body, len);
    free(body);
}

void sim_reply_error(h2o_req_t *req, int status, const char *message, const char *type)
{
    size_t len;
    char *body = sim_render_error(message, type, status, &len);
    sim_reply_json(req, status, body, len);
}

void sim_reply_ok(h2o_req_t *req)
{
    fd_reply(req, 200, "application/json", "{\"ok\":true}", 11);
}

static int fd_of(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock ? h2o_socket_get_fd(sock) : -1;
}

bool sim_peer_gone(h2o_req_t *req)
{
    int fd = fd_of(req);
    if (fd < 0)
        return false;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/*
 * After shutdown() every write fails, so h2o closes the connection and disposes the request
 * through its normal error path.
 */
void sim_drop_connection(h2o_req_t *req, h2o_generator_t *gen, bool started)
{
    int fd = fd_of(req);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    req->http1_is_persistent = 0;
    if (!started) {
        req->res.status = 503;
        req->res.reason = fd_http_reason(503);
        h2o_start_response(req, gen);
    }
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

static void add_header(json_object *o, const char *name, size_t nlen, const char *val, size_t vlen)
{
    char key[HEADER_KEYLEN];
    if (nlen >= sizeof(key))
        return; /* no real client sends such names; the value would be useless to tests */
    memcpy(key, name, nlen);
    key[nlen] = '\0';
    json_object *prev;
    if (json_object_object_get_ex(o, key, &prev)) {
        size_t plen = (size_t)json_object_get_string_len(prev);
        char *joined = malloc(plen + 2 + vlen);
        if (!joined)
            return;
        memcpy(joined, json_object_get_string(prev), plen);
        memcpy(joined + plen, ", ", 2);
        memcpy(joined + plen + 2, val, vlen);
        json_object_object_add(o, key, json_object_new_string_len(joined, (int)(plen + 2 + vlen)));
        free(joined);
        return;
    }
    json_object_object_add(o, key, json_object_new_string_len(val, (int)vlen));
}

void sim_record_request(sim_state_t *st, h2o_req_t *req)
{
    json_object *headers = json_object_new_object();
    if (req->authority.len)
        add_header(headers, "host", 4, req->authority.base, req->authority.len);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        add_header(headers, h->name->base, h->name->len, h->value.base, h->value.len);
    }
    sim_state_record(st, req->path.base, req->path.len, req->entity.base ? req->entity.base : "",
                     sim_body_len(req), headers);
}
