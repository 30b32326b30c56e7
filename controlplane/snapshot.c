/*
 * controlplane/snapshot.c - the registry carried over a segment that has to be rebuilt.
 *
 * The segment holds the registry, and a start that cannot use it (a segment of another layout
 * version, i.e. a new build, with --rebuild_shm; a change of splitwise mode) starts from an
 * empty one. So the control plane keeps a copy of the registry in a small JSON file beside its
 * control socket (<dir>/<segment name>.registry.json): rewritten (temporary file, then rename)
 * within a second of each change of the published table and at shutdown, never on the request
 * path. A rebuilt segment is filled from it: each entry goes through the /register payload's own
 * validation (fd_instance_parse_object, the mode's role rules, auth.instance-allow), enters with
 * health UNKNOWN (its first probe decides, as after any restart), and keeps its drain flag and
 * whether it came from register.yaml. A reused segment never reads the file: the segment is
 * newer. With registry.backend etcd the fleet comes from etcd instead.
 *
 * Each entry: {"role","host_ip","port","metrics_port","connector_port"?,
 * "engine_worker_queue_port"?,"transfer_protocol"?,"rdma_ports"?,"device_ids"?,"tp_size"?,
 * "drained","static"}.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "controlplane/admit.h"
#include "controlplane/cp.h"
#include "controlplane/registry.h"
#include "controlplane/snapshot.h"

#define SNAPSHOT_PERIOD_MS 1000
#define SNAPSHOT_MAX_BYTES (4u * 1024 * 1024) /* 1,024 entries take about 400 KiB */

static uint64_t g_written_table_ms; /* hdr.table_updated_ms of the last snapshot written */

void cp_snapshot_path(const cp_t *cp, char *out, size_t outlen)
{
    const char *slash = strrchr(cp->control_socket, '/');
    int dirlen = slash ? (int)(slash - cp->control_socket) : 1;
    const char *dir = slash ? cp->control_socket : ".";
    const char *name = cp->shm_name[0] == '/' ? cp->shm_name + 1 : cp->shm_name;
    snprintf(out, outlen, "%.*s/%s.registry.json", dirlen, dir, name);
}

static json_object *entry(const cp_t *cp, const shm_instance_t *in)
{
    fd_instance_info_t info;
    fd_instance_from_slot(in, &info);
    json_object *o = fd_instance_to_json(&info);
    json_object_object_add(o, "drained", json_object_new_boolean(shm_slot_drained(in)));
    json_object_object_add(o, "static", json_object_new_boolean(cp_static_has(cp, in->url)));
    return o;
}

static int write_file(const char *path, const char *text, size_t len)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

void cp_snapshot_write(cp_t *cp)
{
    uint64_t table = shm_table_updated_ms(&cp->seg);
    json_object *items = json_object_new_array();
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(&cp->seg, i);
        if (shm_slot_is_live(in) && in->role < SHM_ROLE_COUNT)
            json_object_array_add(items, entry(cp, in));
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "splitwise", json_object_new_boolean(cp->splitwise));
    json_object_object_add(o, "instances", items);
    size_t len;
    const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    char path[PATH_MAX];
    cp_snapshot_path(cp, path, sizeof(path));
    if (write_file(path, text, len) == 0)
        g_written_table_ms = table;
    else
        LOG_RATELIMITED(FD_LOG_WARN, "Cannot write the registry snapshot %s: %s", path, strerror(errno));
    json_object_put(o);
}

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    if (shm_table_updated_ms(&cp->seg) != g_written_table_ms)
        cp_snapshot_write(cp);
}

int cp_snapshot_start(cp_t *cp)
{
    if (cp_timer_init(&cp->snapshot_timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    cp_timer_arm(&cp->snapshot_timer, 1, SNAPSHOT_PERIOD_MS);
    return 0;
}

void cp_snapshot_stop(cp_t *cp)
{
    if (cp->snapshot_timer.sock != NULL && cp->seg.hdr != NULL)
        cp_snapshot_write(cp); /* the registry as this run leaves it */
    cp_timer_dispose(&cp->snapshot_timer);
}

/* The file's text (NUL-terminated, caller frees), or NULL when absent or unreadable. */
static char *read_file(const char *path, size_t *len)
{
    char why[128];
    int fd = fd_open_regular(path, why, sizeof(why));
    if (fd < 0)
        return NULL;
    char *buf = malloc(SNAPSHOT_MAX_BYTES + 1);
    size_t n = 0;
    ssize_t r;
    while (buf && n <= SNAPSHOT_MAX_BYTES && (r = read(fd, buf + n, SNAPSHOT_MAX_BYTES + 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (buf == NULL || n > SNAPSHOT_MAX_BYTES) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static bool restore_one(cp_t *cp, json_object *item)
{
    fd_instance_info_t info;
    char msg[256];
    json_object *v;
    if (!json_object_is_type(item, json_type_object) ||
        fd_instance_parse_object(item, cp->splitwise, &info, msg, sizeof(msg)) != 0 ||
        cp_admit_host(cp, &info, msg, sizeof(msg)) != 0) {
        LOG_WARN("Registry snapshot: an entry is not carried over: %s",
                 json_object_is_type(item, json_type_object) ? msg : "not an object");
        return false;
    }
    cp_upsert_kind_t kind;
    int slot = cp_registry_upsert(cp, &info, SHM_HEALTH_UNKNOWN, true, &kind, msg, sizeof(msg));
    if (slot < 0) {
        LOG_WARN("Registry snapshot: %s is not carried over: %s", info.url, msg);
        return false;
    }
    if (json_object_object_get_ex(item, "static", &v) && json_object_get_boolean(v))
        cp_static_add(cp, info.url);
    if (json_object_object_get_ex(item, "drained", &v) && json_object_get_boolean(v))
        cp_registry_set_drained(cp, (unsigned)slot, true);
    return true;
}

unsigned cp_snapshot_restore(cp_t *cp)
{
    char path[PATH_MAX];
    cp_snapshot_path(cp, path, sizeof(path));
    if (strcmp(cp->cfg.registry_backend, "etcd") == 0) {
        LOG_INFO("Registry snapshot %s not read: registry.backend etcd holds the fleet", path);
        return 0;
    }
    size_t len = 0;
    char *text = read_file(path, &len);
    if (text == NULL) {
        LOG_WARN(
            "Shared memory %s was rebuilt and no registry snapshot is readable at %s: the registry starts "
            "empty (instances that heartbeat come back at their next /register)",
            cp->shm_name, path);
        return 0;
    }
    json_tokener *tok = json_tokener_new_ex(8);
    json_object *doc = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    bool whole = tok && json_tokener_get_error(tok) == json_tokener_success;
    if (tok)
        json_tokener_free(tok);
    free(text);
    json_object *items = NULL;
    if (!whole || !json_object_is_type(doc, json_type_object) ||
        !json_object_object_get_ex(doc, "instances", &items) ||
        !json_object_is_type(items, json_type_array)) {
        LOG_WARN("Registry snapshot %s is not valid: the registry starts empty", path);
        json_object_put(doc);
        return 0;
    }
    unsigned n = 0, total = (unsigned)json_object_array_length(items);
    for (unsigned i = 0; i < total && i < SHM_MAX_INSTANCES; i++)
        n += restore_one(cp, json_object_array_get_idx(items, i));
    json_object_put(doc);
    LOG_INFO("Shared memory %s: %u of %u registered instance(s) carried over from %s (health checks decide)",
             cp->shm_name, n, total, path);
    return n;
}
