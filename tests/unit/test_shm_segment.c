/*
 * tests/unit/test_shm_segment.c - segment life (create, reuse, attach, refuse, rebuild) and the
 * seqcount-protected configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/policies.h"
#include "test_shm_util.h"

TestSuite(segment, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(segment, created_segment_is_initialised)
{
    shm_header_t *h = seg.hdr;
    cr_assert_eq(h->magic, SHM_MAGIC);
    cr_assert_eq(h->layout_version, SHM_LAYOUT_VERSION);
    cr_assert_eq(h->size, seg.size);
    cr_assert_str_eq(h->name, seg_name);
    cr_assert_geq(h->gp_epoch, 1);
    uint64_t offs[] = {h->readers_off, h->dps_off, h->instances_off, h->arena_off};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(offs[i] % SHM_CACHELINE, 0, "section %d misaligned", i);
        cr_assert(i == 0 || offs[i] > offs[i - 1]);
    }
    cr_assert_eq(h->arena_off + (uint64_t)SHM_ARENA_BLOCKS * SHM_ARENA_BLOCK_SIZE, h->size);
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        const shm_view_t *v = shm_view(&seg, (shm_role_t)r);
        cr_assert_not_null(v, "role %d has no view", r);
        cr_assert_eq(v->count, 0);
    }
    cr_assert_eq(h->arena_used, SHM_ROLE_COUNT);
    cr_assert_eq(free_list_len(&seg), SHM_ARENA_BLOCKS - SHM_ROLE_COUNT);
}

Test(segment, reopen_reuses_state_and_attach_sees_it)
{
    int slot = add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);

    shm_seg_t again, dp;
    shm_open_result_t how;
    char err[256] = "";
    cr_assert_eq(shm_open_cp(&again, seg_name, false, &how, err, sizeof err), 0, "%s", err);
    cr_assert_eq(how, SHM_OPEN_REUSED);
    cr_assert_eq(shm_slot_find(&again, "http://10.0.0.1:8000"), slot);
    cr_assert_eq(shm_attach(&dp, seg_name, err, sizeof err), 0, "%s", err);
    cr_assert_neq((void *)dp.hdr, (void *)seg.hdr, "a second mapping should land elsewhere");
    const shm_view_t *v = shm_view(&dp, SHM_ROLE_MIXED);
    cr_assert_eq(v->count, 1);
    cr_assert_eq(v->slot[0], slot);
    shm_detach(&again);
    shm_detach(&dp);
    cr_assert_null(dp.hdr);
}

Test(segment, attach_to_absent_segment_fails)
{
    char name[64], err[256] = "";
    shm_seg_t s;
    make_seg_name(name, sizeof name);
    cr_assert_eq(shm_attach(&s, name, err, sizeof err), -1);
    cr_assert(strstr(err, name) != NULL, "error should name the segment: %s", err);
    cr_assert_null(s.hdr);
}

Test(segment, bad_names_are_refused)
{
    shm_seg_t s;
    shm_open_result_t how;
    char err[256] = "";
    cr_assert_eq(shm_open_cp(&s, "no-slash", false, &how, err, sizeof err), -1);
    cr_assert_eq(shm_open_cp(&s, "/a/b", false, &how, err, sizeof err), -1);
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(shm_attach(&s, longname, err, sizeof err), -1);
}

Test(segment, version_mismatch_is_refused_unless_rebuild)
{
    add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    seg.hdr->layout_version = SHM_LAYOUT_VERSION + 1;

    shm_seg_t other;
    shm_open_result_t how;
    char err[256] = "";
    cr_assert_eq(shm_open_cp(&other, seg_name, false, &how, err, sizeof err), -1);
    cr_assert(strstr(err, "incompatible") && strstr(err, "version"), "%s", err);
    cr_assert_eq(shm_attach(&other, seg_name, err, sizeof err), -1);

    cr_assert_eq(shm_open_cp(&other, seg_name, true, &how, err, sizeof err), 0, "%s", err);
    cr_assert_eq(how, SHM_OPEN_REBUILT);
    cr_assert_eq(other.hdr->layout_version, SHM_LAYOUT_VERSION);
    cr_assert_eq(shm_slot_find(&other, "http://10.0.0.1:8000"), -1, "a rebuilt segment starts empty");
    /* the old mapping is now an orphan; the name belongs to the new segment */
    shm_detach(&seg);
    seg = other;
}

/* A foreign or half-made object under our name: wrong size, or right size and no magic. */
static void check_refused_then_rebuilt(off_t size)
{
    seg_teardown();
    int fd = shm_open(seg_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, size), 0);
    close(fd);

    shm_open_result_t how;
    char err[256] = "";
    cr_assert_eq(shm_open_cp(&seg, seg_name, false, &how, err, sizeof err), -1);
    cr_assert_eq(shm_attach(&seg, seg_name, err, sizeof err), -1);
    cr_assert_eq(shm_open_cp(&seg, seg_name, true, &how, err, sizeof err), 0, "%s", err);
    cr_assert_eq(how, SHM_OPEN_REBUILT);
    cr_assert_eq(seg.hdr->magic, SHM_MAGIC);
}

Test(segment, wrong_size_is_refused_unless_rebuild)
{
    check_refused_then_rebuilt(4096);
}

Test(segment, missing_magic_is_refused_unless_rebuild)
{
    check_refused_then_rebuilt((off_t)seg.size);
}

/* A segment another local user could write (planted by them, or opened up to them) is refused
 * by the CP even with rebuild, and left in place: it is not ours to remove. */
static void check_foreign_refused(uid_t uid, mode_t mode, const char *why)
{
    int fd = shm_open(seg_name, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fchown(fd, uid, (gid_t)-1), 0);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
    for (int rebuild = 0; rebuild < 2; rebuild++) {
        shm_seg_t other;
        shm_open_result_t how;
        char err[256] = "";
        cr_assert_eq(shm_open_cp(&other, seg_name, rebuild, &how, err, sizeof err), -1, "rebuild=%d",
                     rebuild);
        cr_assert(strstr(err, why), "%s", err);
    }
    cr_assert_neq(shm_slot_find(&seg, "http://10.0.0.1:8000"), -1, "the refused segment was changed");
}

Test(segment, segment_of_another_uid_is_refused)
{
    add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    check_foreign_refused(geteuid() + 1, 0600, "belongs to uid");
}

Test(segment, segment_open_to_group_or_others_is_refused)
{
    add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    check_foreign_refused(geteuid(), 0604, "group or others");
    check_foreign_refused(geteuid(), 0660, "group or others");
}

Test(segment, default_name_follows_port)
{
    char name[64];
    shm_default_name(name, sizeof name, 9000);
    cr_assert_str_eq(name, "/fd-router-9000");
}

static shm_config_t sample_config(void)
{
    shm_config_t c;
    memset(&c, 0, sizeof c);
    c.splitwise = 1;
    c.policy[SHM_ROLE_MIXED] = FD_POL_ROUND_ROBIN;
    c.policy[SHM_ROLE_PREFILL] = FD_POL_CACHE_AWARE;
    c.policy[SHM_ROLE_DECODE] = FD_POL_REQUEST_NUM;
    c.balance_abs_threshold = 1.5;
    c.hit_ratio_weight = 0.25;
    c.max_body_bytes = 1 << 20;
    snprintf(c.tokenizer_url, sizeof c.tokenizer_url, "http://127.0.0.1:7000/tokenize");
    return c;
}

Test(segment, config_round_trip)
{
    shm_config_t in = sample_config(), out;
    uint32_t seq0 = shm_config_seq(&seg);
    shm_config_publish(&seg, &in);
    cr_assert_eq(shm_config_seq(&seg), seq0 + 2);
    memset(&out, 0xAA, sizeof out);
    cr_assert(shm_config_read(&seg, &out));
    cr_assert_eq(memcmp(&in, &out, sizeof in), 0);

    shm_seg_t dp;
    char err[256] = "";
    cr_assert_eq(shm_attach(&dp, seg_name, err, sizeof err), 0, "%s", err);
    memset(&out, 0, sizeof out);
    cr_assert(shm_config_read(&dp, &out));
    cr_assert_str_eq(out.tokenizer_url, "http://127.0.0.1:7000/tokenize");
    shm_detach(&dp);
}

Test(segment, config_left_mid_write_is_not_read_until_republished)
{
    shm_config_t in = sample_config(), out;
    shm_config_publish(&seg, &in);
    /* a CP died between the two increments */
    __atomic_add_fetch(&seg.hdr->config_seq, 1, __ATOMIC_RELEASE);
    seg.hdr->config.splitwise = 7;
    memset(&out, 0, sizeof out);
    cr_assert_not(shm_config_read(&seg, &out));
    cr_assert_eq(out.splitwise, 0, "out must be left alone");

    in.splitwise = 0;
    shm_config_publish(&seg, &in);
    cr_assert_eq(shm_config_seq(&seg) % 2, 0);
    cr_assert(shm_config_read(&seg, &out));
    cr_assert_eq(memcmp(&in, &out, sizeof in), 0);
}

/* kB of the mapping that starts at `at` resident in this process's page tables (smaps' Rss) */
static long mapped_kb(const void *at)
{
    char want[32], line[256];
    snprintf(want, sizeof want, "%lx-", (unsigned long)(uintptr_t)at);
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    long kb = -1;
    bool in = false;
    while (kb < 0 && fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' '))
            in = !strncmp(line, want, strlen(want));
        else if (in && !strncmp(line, "Rss:", 4))
            kb = strtol(line + 4, NULL, 10);
    }
    fclose(f);
    return kb;
}

Test(segment, prefault_maps_every_page_of_an_attached_segment)
{
    shm_seg_t dp;
    char err[256] = "";
    cr_assert_eq(shm_attach(&dp, seg_name, err, sizeof err), 0, "%s", err);
    long before = mapped_kb(dp.hdr), all = (long)(dp.size >> 10);
    cr_assert_lt(before, all / 2, "a fresh attach maps pages as they are touched: %ld of %ld kB", before,
                 all);
    cr_assert(shm_prefault(&dp), "MADV_POPULATE_WRITE: %s", strerror(errno));
    cr_assert_eq(mapped_kb(dp.hdr), all, "every page mapped");
    shm_detach(&dp);
}
