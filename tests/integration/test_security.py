"""tests/integration/test_security.py - access control as an attacker on the public port meets
it: host_ip address classes and auth.instance-allow, auth.register-allow, the admin token, and
the file and segment rules of docs/security.md. Every probe the router could be made to send
stays on 127.0.0.0/8: refused addresses are chosen so that even a router without these rules
would only reach the loopback interface.
"""

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


if __name__ == "__main__":
    fdharness.main()
