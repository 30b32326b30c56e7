/*
 * tests/unit/test_netacl.c - CIDR allow-lists and the address classes refused as host_ip.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "common/netacl.h"

static fd_acl_t acl_of(const char *text)
{
    fd_acl_t a;
    char err[128] = "";
    cr_assert_eq(fd_acl_parse(&a, text, err, sizeof err), 0, "%s: %s", text, err);
    return a;
}

Test(netacl, unset_list_allows_everything)
{
    fd_acl_t a = acl_of("");
    cr_assert_eq(a.n, 0);
    cr_assert(fd_acl_allows(&a, "8.8.8.8"));
    cr_assert(fd_acl_allows(&a, "::1"));
}

Test(netacl, blocks_and_hosts_match_both_spellings_of_ipv4)
{
    fd_acl_t a = acl_of("10.0.0.0/8, 127.0.0.1 fd00::/8,192.168.1.128/25");
    cr_assert_eq(a.n, 4);
    cr_assert(fd_acl_allows(&a, "10.255.1.2"));
    cr_assert(fd_acl_allows(&a, "::ffff:10.1.2.3"), "the mapped spelling is the same host");
    cr_assert(fd_acl_allows(&a, "127.0.0.1"));
    cr_assert_not(fd_acl_allows(&a, "127.0.0.2"));
    cr_assert(fd_acl_allows(&a, "fd12::1"));
    cr_assert_not(fd_acl_allows(&a, "fe80::1"));
    cr_assert(fd_acl_allows(&a, "192.168.1.200"));
    cr_assert_not(fd_acl_allows(&a, "192.168.1.100"));
    cr_assert_not(fd_acl_allows(&a, "11.0.0.1"));
    cr_assert_not(fd_acl_allows(&a, "not-an-ip"));
    fd_acl_t all = acl_of("0.0.0.0/0");
    cr_assert(fd_acl_allows(&all, "1.2.3.4"));
    cr_assert_not(fd_acl_allows(&all, "2001:db8::1"), "an IPv4 block never matches IPv6");
}

Test(netacl, bad_entries_are_refused)
{
    const char *bad[] = {"10.0.0.0/33", "10.0.0.1/8",   "::1/129",     "10.0.0.0/",
                         "10.0.0.0/-1", "host.example", "10.0.0.0/8x", "1.2.3.4/+8"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fd_acl_t a;
        char err[128] = "";
        cr_assert_eq(fd_acl_parse(&a, bad[i], err, sizeof err), -1, "%s", bad[i]);
        cr_assert(strstr(err, "not an address"), "%s", err);
    }
    char many[FD_ACL_MAX * 16 + 32] = "";
    for (int i = 0; i <= FD_ACL_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.0.%d,", i);
    fd_acl_t a;
    char err[128];
    cr_assert_eq(fd_acl_parse(&a, many, err, sizeof err), -1);
}

Test(netacl, refused_address_classes_are_named)
{
    struct {
        const char *ip, *why;
    } cases[] = {
        {"0.0.0.0", "unspecified"},
        {"0.1.2.3", "unspecified"},
        {"::", "unspecified"},
        {"::ffff:0.0.0.0", "unspecified"},
        {"255.255.255.255", "broadcast"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"ff02::1", "multicast"},
        {"169.254.169.254", "link-local"},
        {"::ffff:169.254.169.254", "link-local"},
        {"fe80::1", "link-local"},
        {"febf::1", "link-local"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *why = fd_host_refusal(cases[i].ip);
        cr_assert(why && !strcmp(why, cases[i].why), "%s: %s", cases[i].ip, why ? why : "(allowed)");
    }
    const char *fine[] = {"127.0.0.1",   "10.1.2.3",        "::1",       "fec0::1",
                          "2001:db8::1", "223.255.255.255", "240.0.0.1", "169.253.0.1"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++)
        cr_assert_null(fd_host_refusal(fine[i]), "%s", fine[i]);
}
