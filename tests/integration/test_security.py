"""tests/integration/test_security.py - access control as an attacker on the public port meets
it: host_ip address classes and auth.instance-allow, auth.register-allow, the admin token, and
the file and segment rules of docs/security.md. Every probe the router could be made to send
stays on 127.0.0.0/8: refused addresses are chosen so that even a router without these rules
would only reach the loopback interface.
"""

import os

import fdharness
from fdharness import FdTestCase

INVALID_PREFIX = "invalid InstanceInfo format:"


class InstanceAddressTest(FdTestCase):
    def assert_refused(self, r, why):
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["code"], 400)
        self.assertTrue(r.json()["msg"].startswith(INVALID_PREFIX), r.json())
        self.assertIn(why, r.json()["msg"])

    def test_unspecified_address_is_refused_by_default(self):
        router = self.h.start_router()
        sim = self.h.start_sim()
        # 0.0.0.0 reaches the local host: a router that accepted it would probe the sim
        self.assert_refused(router.register({"role": "mixed", "host_ip": "0.0.0.0", "port": sim.port}),
                            "unspecified")
        self.assertEqual(router.registered_urls(), [])
        self.assertEqual(router.register_sim(sim).status, 200)

    def test_instance_allow_limits_host_ip(self):
        router = self.h.start_router(config={"auth": {"instance-allow": "127.0.0.1/32, ::1"}})
        sim = self.h.start_sim()
        self.assert_refused(router.register({"role": "mixed", "host_ip": "127.0.0.2", "port": sim.port}),
                            "outside auth.instance-allow")
        self.assertEqual(router.registered_urls(), [])
        self.assertEqual(router.register_sim(sim).status, 200)
        self.assertEqual(router.registered_urls(), [sim.url])

    def test_register_yaml_items_obey_the_same_rules(self):
        sim = self.h.start_sim()
        router = self.h.start_router(
            config={"auth": {"instance-allow": "127.0.0.1"}},
            register=[{"role": "mixed", "host_ip": "127.0.0.3", "port": sim.port},
                      {"role": "mixed", "host_ip": "0.0.0.0", "port": sim.port},
                      {"role": "mixed", "host_ip": "127.0.0.1", "port": sim.port}])
        fdharness.wait_until(lambda: router.registered_urls() == [sim.url], 10, what="the allowed item")
        logs = router.proc.logs()
        self.assertIn("outside auth.instance-allow", logs)
        self.assertIn("unspecified", logs)


class RegisterAllowTest(FdTestCase):
    def test_registration_from_outside_the_list_is_refused_and_changes_nothing(self):
        router = self.h.start_router(config={"auth": {"register-allow": "10.0.0.0/8"}})
        sim = self.h.start_sim()
        for headers in (None, {"X-Fd-Client-Addr": "10.1.2.3"}):  # a forged address is replaced
            r = router.post("/register", sim.register_payload(), headers=headers)
            self.assertEqual(r.status, 403, r)
            self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
            self.assertEqual(r.json()["code"], 403)
            self.assertIn("127.0.0.1", r.json()["msg"])
        self.assertEqual(router.registered_urls(), [])

    def test_oversized_registration_gets_413(self):
        router = self.h.start_router()
        r = router.post("/register", b'{"role":"mixed","pad":"' + b"x" * (1 << 20) + b'"}')
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.json()["code"], 413)
        self.assertEqual(router.get("/health").status, 200)

    def test_registration_from_inside_the_list_is_served(self):
        router = self.h.start_router(config={"auth": {"register-allow": "10.0.0.0/8, 127.0.0.0/8"}})
        sim = self.h.start_sim()
        self.assertEqual(router.register_sim(sim).status, 200)
        self.assertEqual(router.registered_urls(), [sim.url])


class AdminTokenTest(FdTestCase):
    TOKEN = "test-token-0123456789abcdef"

    def start(self):
        path = os.path.join(self.h.tmpdir, "admin.token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (self.TOKEN + "\n").encode())
        os.close(fd)
        router = self.h.start_router(config={"auth": {"admin-token-file": path}})
        sim = self.h.start_sim()
        self.assertEqual(router.register_sim(sim).status, 200, "/register needs no token")
        return router, sim

    def test_abort_requires_the_token(self):
        router, sim = self.start()
        body = {"abort_all": True}
        for headers in (None, {"Authorization": "Bearer wrong-token-0123456789abcd"},
                        {"Authorization": "Bearer " + self.TOKEN[:-1]}, {"Authorization": self.TOKEN},
                        {"Authorization": "Basic " + self.TOKEN}):
            r = router.post("/v1/abort_requests", body, headers=headers)
            self.assertEqual(r.status, 401, (headers, r))
            self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
            self.assertEqual(r.json()["code"], 401)
            self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertEqual(sim.stats()["aborted"], 0)
        r = router.post("/v1/abort_requests", body, headers={"Authorization": "Bearer " + self.TOKEN})
        self.assertEqual(r.status, 200, r)
        r = router.post("/v1/abort_requests", body, headers={"authorization": "bearer " + self.TOKEN})
        self.assertEqual(r.status, 200, "the scheme is case-insensitive: %r" % (r,))

    def test_readable_token_file_stops_the_start(self):
        path = os.path.join(self.h.tmpdir, "open.token")
        with open(path, "w") as f:
            f.write(self.TOKEN)
        os.chmod(path, 0o644)
        router = self.h.start_router(config={"auth": {"admin-token-file": path}}, wait_ready=False)
        fdharness.wait_until(lambda: not router.proc.alive(), 10, what="the router to refuse its config")
        self.assertIn("every local user", router.proc.stderr())


if __name__ == "__main__":
    fdharness.main()
