/*
 * controlplane/reload.c - re-reading config.yaml at a hot upgrade (`fdctl upgrade`, SIGHUP,
 * `systemctl reload`), applied through the new data plane.
 *
 *   prepare   (before the new DP is spawned) load the file strictly; an invalid one fails the
 *             upgrade with its file:line error and changes nothing. Keys that cannot change
 *             under a running router (the listening socket, the segment, the log destination...,
 *             docs/config.md lists them) keep their running value, each named in a WARN. The
 *             result becomes cp->cfg and is published into shared memory, so the new DP reads
 *             it when it starts (its log level comes on its command line from cp->cfg).
 *   commit    (the new DP serves) the control plane applies it too: its log level, and the
 *             timers of its periodic jobs re-armed with the new periods and thresholds.
 *   rollback  (the new DP failed) the previous configuration is restored and republished: the
 *             old DP, which kept serving, runs it still.
 *
 * The registry, drain flags, counters and prefix tree live in the segment, which a reload never
 * touches. One upgrade runs at a time, so one reload is pending at most.
 */
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/evict.h"
#include "controlplane/health.h"
#include "controlplane/logfiles.h"
#include "controlplane/metrics_poll.h"
#include "controlplane/models_poll.h"
#include "controlplane/reload.h"
#include "controlplane/stats.h"
#include "controlplane/supervise.h"

static fd_config_t prev; /* the configuration before the pending reload (large: not on the stack) */
static char prev_binary[PATH_MAX];
static fd_config_t next;
static bool pending;

int cp_config_read(const char *path, const cp_args_t *a, fd_config_t *c, char *err, size_t errlen)
{
    fd_config_defaults(c);
    if (path != NULL && path[0] != '\0' && fd_config_load(c, path, err, errlen) != 0)
        return -1;
    if (a->port != NULL)
        c->port = cp_parse_port(a->port);
    c->splitwise = a->splitwise || c->splitwise;
    return 0;
}

/* Keys read once at start. Each one that changed is named and keeps its running value. */
static unsigned keep_restart_keys(const fd_config_t *cur, fd_config_t *n)
{
    unsigned kept = 0;
#define KEEP_NUM(key, field, fmt)                                                                            \
    if (n->field != cur->field) {                                                                            \
        LOG_WARN("Reload: %s changed (" fmt " -> " fmt ") but needs a restart; keeping " fmt, key,           \
                 cur->field, n->field, cur->field);                                                          \
        n->field = cur->field;                                                                               \
        kept++;                                                                                              \
    }
#define KEEP_STR(key, field)                                                                                 \
    if (strcmp(n->field, cur->field) != 0) {                                                                 \
        LOG_WARN("Reload: %s changed (\"%s\" -> \"%s\") but needs a restart; keeping \"%s\"", key,           \
                 cur->field, n->field, cur->field);                                                          \
        memcpy(n->field, cur->field, sizeof(n->field));                                                      \
        kept++;                                                                                              \
    }
    KEEP_NUM("server.port", port, "%u");
    KEEP_STR("server.listen", listen);
    KEEP_NUM("server.splitwise", splitwise, "%d");
    KEEP_STR("log.output", log_output);
    KEEP_STR("manager.register-path", register_path);
    KEEP_NUM("manager.health-check-timeout-secs", health_check_timeout_secs, "%g");
    KEEP_NUM("scheduler.cache-block-size", cache_block_size, "%d");
    KEEP_STR("router.shm-name", shm_name);
    KEEP_STR("router.control-socket", control_socket);
    KEEP_STR("registry.backend", registry_backend); /* etcd.c connects and watches once, at start */
    KEEP_STR("registry.etcd-endpoints", etcd_endpoints);
    KEEP_STR("registry.etcd-prefix", etcd_prefix);
    KEEP_NUM("registry.etcd-lease-secs", etcd_lease_secs, "%d");
    KEEP_NUM("registry.etcd-timeout-secs", etcd_timeout_secs, "%g");
    KEEP_NUM("registry.etcd-retry-secs", etcd_retry_secs, "%g");
#undef KEEP_NUM
#undef KEEP_STR
    return kept;
}

static int resolve_binary(const cp_t *cp, const fd_config_t *c, char *out, size_t outlen)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    return cp_dp_resolve_binary(cp->args.dp_binary, c->dp_binary, self, out, outlen);
}

static void publish(cp_t *cp)
{
    shm_config_t sc;
    fd_config_to_shm(&cp->cfg, &sc);
    shm_config_publish(&cp->seg, &sc);
}

/* Back to the configuration before the pending reload (it worked then, so its access log opens). */
static void restore(cp_t *cp)
{
    char why[256];
    cp->cfg = prev;
    memcpy(cp->dp_binary, prev_binary, sizeof(cp->dp_binary));
    if (cp_access_log_open(cp, why, sizeof(why)) != 0)
        LOG_WARN("Reload: the previous access log cannot be reopened: %s", why);
    publish(cp);
}

int cp_reload_prepare(cp_t *cp, char *err, size_t errlen)
{
    pending = false;
    if (cp->config_path[0] == '\0')
        return 0; /* started without --config_path: the defaults stay */
    char why[512];
    if (cp_config_read(cp->config_path, &cp->args, &next, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "Failed to load config: %s (nothing was changed)", why);
        LOG_ERROR("Reload refused: %s", err);
        return -1;
    }
    char binary[PATH_MAX];
    if (resolve_binary(cp, &next, binary, sizeof(binary)) != 0) {
        snprintf(err, errlen, "Failed to load config: data-plane binary path too long (nothing was changed)");
        return -1;
    }
    unsigned kept = keep_restart_keys(&cp->cfg, &next);
    prev = cp->cfg;
    memcpy(prev_binary, cp->dp_binary, sizeof(prev_binary));
    cp->cfg = next;
    snprintf(cp->dp_binary, sizeof(cp->dp_binary), "%s", binary);
    if (cp_access_log_open(cp, why, sizeof(why)) != 0) {
        restore(cp);
        snprintf(err, errlen, "log.access-log: %s (nothing was changed)", why);
        LOG_ERROR("Reload refused: %s", err);
        return -1;
    }
    publish(cp);
    pending = true;
    LOG_INFO("Reload: %s read (policy %s, prefill %s, decode %s, log level %s)%s", cp->config_path,
             fd_policy_name(cp->cfg.policy), fd_policy_name(cp->cfg.prefill_policy),
             fd_policy_name(cp->cfg.decode_policy), cp->cfg.log_level,
             kept ? "; the keys named above wait for a restart" : "");
    return 0;
}

int cp_config_jobs_start(cp_t *cp)
{
    return cp_health_start(cp) != 0 || cp_metrics_start(cp) != 0 || cp_models_start(cp) != 0 ||
                   cp_stats_start(cp) != 0 || cp_evict_start(cp) != 0 || cp_logfiles_start(cp) != 0
               ? -1
               : 0;
}

void cp_config_jobs_stop(cp_t *cp)
{
    cp_health_stop(cp);
    cp_metrics_stop(cp);
    cp_models_stop(cp);
    cp_stats_stop(cp);
    cp_evict_stop(cp);
    cp_logfiles_stop(cp);
}

void cp_reload_commit(cp_t *cp)
{
    if (!pending)
        return;
    pending = false;
    fd_log_set_level_name(cp->cfg.log_level);
    fd_log_set_format_name(cp->cfg.log_format);
    cp_config_jobs_stop(cp);
    if (cp_config_jobs_start(cp) != 0)
        LOG_ERROR("Reload: a periodic job could not be restarted (timer creation failed)");
    LOG_INFO("Reload: the configuration of %s is in force (data plane and control plane)", cp->config_path);
}

void cp_reload_rollback(cp_t *cp)
{
    if (!pending)
        return;
    pending = false;
    restore(cp);
    LOG_WARN("Reload: the upgrade failed, so the previous configuration stays in force");
}
