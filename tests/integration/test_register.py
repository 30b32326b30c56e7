"""tests/integration/test_register.py - POST /register, /registered and /registered_number as a
FastDeploy instance and its operators see them: the payload forms FastDeploy sends are accepted,
every invalid field gets the Go router's message and status, unhealthy instances are refused,
and re-registration (FastDeploy's 5 s heartbeat) upserts instead of adding duplicates.
"""

import fdharness
from fdharness import FdTestCase

DECODE_PREFIX = "Invalid InstanceInfo JSON format: "
INVALID_PREFIX = "invalid InstanceInfo format:"
# the Go router's WorkerInfo (docs/fastdeploy.md 5) plus newer builds' tp_size
WORKER_INFO_KEYS = {"url", "worker_type", "connector_port", "engine_worker_queue_port", "metrics_port",
                    "transfer_protocol", "rdma_ports", "device_ids", "tp_size"}


class RegisterTest(FdTestCase):
    def assert_msg(self, r, status, msg):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
        self.assertEqual(r.json(), {"code": status, "msg": msg})

    def test_fastdeploy_payload_with_mixed_int_and_string_forms(self):
        router = self.h.start_router()
        sim = self.h.start_sim()
        # docs/fastdeploy.md 5: ports and list items as ints or numeric strings, unknown fields
        # (tp_size, version, is_paused, connected_decodes) ignored, role case-insensitive.
        payload = {
            "role": "MIXED",
            "host_ip": "127.0.0.1",
            "port": str(sim.port),
            "metrics_port": sim.port,
            "connector_port": "8100",
            "engine_worker_queue_port": 8200,
            "transfer_protocol": ["ipc", "rdma"],
            "rdma_ports": [7001, "7002"],
            "device_ids": [0, "1"],
            "tp_size": 2,
            "version": "v1",
            "is_paused": False,
            "connected_decodes": [],
        }
        self.assert_msg(router.register(payload), 200, "Register success")

        reg = router.registered()
        self.assertEqual(reg["code"], 200)
        self.assertEqual(reg["msg"], "success")
        self.assertEqual(reg["prefill"], [])
        self.assertEqual(reg["decode"], [])
        self.assertEqual(len(reg["mixed"]), 1)
        w = reg["mixed"][0]
        self.assertEqual(set(w), WORKER_INFO_KEYS)
        self.assertEqual(w["url"], sim.url)
        self.assertEqual(w["worker_type"], "mixed")
        self.assertEqual(w["metrics_port"], str(sim.port))
        self.assertEqual(w["connector_port"], "8100")
        self.assertEqual(w["engine_worker_queue_port"], "8200")
        self.assertEqual(w["transfer_protocol"], ["ipc", "rdma"])
        self.assertEqual(w["rdma_ports"], ["7001", "7002"])
        self.assertEqual(w["device_ids"], ["0", "1"])
        self.assertEqual(w["tp_size"], 2)

        # role as FastDeploy's integer, no optional fields: absent lists are null, ports "".
        sim2 = self.h.start_sim()
        self.assert_msg(router.register({"role": 0, "host_ip": "127.0.0.1", "port": sim2.port}), 200,
                        "Register success")
        w2 = [w for w in router.registered()["mixed"] if w["url"] == sim2.url]
        self.assertEqual(len(w2), 1, router.registered())
        w2 = w2[0]
        self.assertEqual(set(w2), WORKER_INFO_KEYS)
        for key in ("url", "worker_type", "connector_port", "engine_worker_queue_port", "metrics_port"):
            self.assertIsInstance(w2[key], str, key)
        self.assertEqual(w2["metrics_port"], str(sim2.port), "metrics_port defaults to port")
        self.assertEqual(w2["connector_port"], "")
        self.assertEqual(w2["engine_worker_queue_port"], "")
        self.assertIsNone(w2["rdma_ports"])
        self.assertIsNone(w2["device_ids"])
        self.assertEqual(router.get("/registered_number").json(), {"mixed": 2, "prefill": 0, "decode": 0})

    def test_invalid_fields_get_fastdeploy_messages(self):
        router = self.h.start_router()
        base = {"role": "mixed", "host_ip": "127.0.0.1", "port": 18000}

        def without(key):
            return {k: v for k, v in base.items() if k != key}

        cases = [
            (without("role"), INVALID_PREFIX + "role is required"),
            (dict(base, role="gpu"), INVALID_PREFIX + "invalid role: gpu"),
            (without("host_ip"), INVALID_PREFIX + "host_ip is required"),
            (dict(base, host_ip="not-an-ip"), INVALID_PREFIX + "invalid host_ip: not-an-ip"),
            (without("port"), INVALID_PREFIX + "port is required"),
            (dict(base, port=70000), INVALID_PREFIX + "invalid port: 70000"),
            (dict(base, port="abc"), INVALID_PREFIX + "invalid port: abc"),
            (dict(base, port=0), INVALID_PREFIX + "invalid port: 0"),
            (dict(base, metrics_port="99999"), INVALID_PREFIX + "invalid metrics_port: 99999"),
            (dict(base, transfer_protocol=["ipc", "tcp"]), INVALID_PREFIX + "invalid protocol: tcp"),
        ]
        for payload, msg in cases:
            with self.subTest(msg=msg):
                self.assert_msg(router.register(payload), 400, msg)

        # Decode errors: the Go router puts its JSON decoder's text after the prefix; ours differs
        # in wording, the prefix, code and status are what clients match on.
        for body in ("", "{not json", "[1,2]", '{"role":"mixed","host_ip":"127.0.0.1","port":1.5}',
                     '{"role":"mixed","host_ip":"127.0.0.1","port":18000,"device_ids":[1.5]}'):
            with self.subTest(body=body):
                r = fdharness.post(router.port, "/register", body)
                self.assertEqual(r.status, 400, r)
                j = r.json()
                self.assertEqual(j["code"], 400)
                self.assertTrue(j["msg"].startswith(DECODE_PREFIX), j)
        self.assertEqual(router.get("/registered_number").json(), {"mixed": 0, "prefill": 0, "decode": 0})

    def test_splitwise_only_port_rules_and_mode_mismatch(self):
        router = self.h.start_router(splitwise=True)
        base = {"role": "prefill", "host_ip": "127.0.0.1", "port": 18000}
        cases = [
            (dict(base, connector_port=0), INVALID_PREFIX + "invalid connector_port: 0"),
            (dict(base, engine_worker_queue_port="x"), INVALID_PREFIX + "invalid engine_worker_queue_port: x"),
            (dict(base, rdma_ports=[7001, "70000"]), INVALID_PREFIX + "rdma_ports[1] invalid port: 70000"),
            (dict(base, role="mixed"), "splitwise mode only supports PREFILL/DECODE instances"),
        ]
        for payload, msg in cases:
            with self.subTest(msg=msg):
                self.assert_msg(router.register(payload), 400, msg)

        mixed_router = self.h.start_router()
        # in mixed mode the PD-only ports are not validated; the mode check still applies
        self.assert_msg(mixed_router.register(dict(base, role="decode")), 400, "only MIXED instances are allowed")
        self.assert_msg(mixed_router.register(dict(base, role=1)), 400, "only MIXED instances are allowed")

    def test_unhealthy_or_absent_instance_is_refused_with_503(self):
        router = self.h.start_router()
        sim = self.h.start_sim()
        sim.set_health(False)
        self.assert_msg(router.register(sim.register_payload()), 503, "service is not healthy")
        dead_port = fdharness.free_port()
        self.assert_msg(router.register({"role": "mixed", "host_ip": "127.0.0.1", "port": dead_port}), 503,
                        "service is not healthy")
        self.assertEqual(router.registered()["mixed"], [])

        sim.set_health(True)
        self.assert_msg(router.register(sim.register_payload()), 200, "Register success")
        self.assertEqual(router.registered_urls(), [sim.url])

    def test_reregistration_upserts(self):
        router = self.h.start_router(splitwise=True)
        sim = self.h.start_sim()
        payload = sim.register_payload("prefill", connector_port=8100, transfer_protocol=["ipc"],
                                       device_ids=[0])
        for _ in range(3):  # FastDeploy's heartbeat re-sends the same payload
            self.assert_msg(router.register(payload), 200, "Register success")
        self.assertEqual(router.get("/registered_number").json(), {"mixed": 0, "prefill": 1, "decode": 0})

        # changed metadata replaces the entry rather than adding one
        self.assert_msg(router.register(dict(payload, connector_port=8101)), 200, "Register success")
        reg = router.registered()
        self.assertEqual(len(reg["prefill"]), 1, reg)
        self.assertEqual(reg["prefill"][0]["connector_port"], "8101")

        # a role change moves the instance to the other table (upsert keyed by URL)
        self.assert_msg(router.register(dict(payload, role="decode")), 200, "Register success")
        reg = router.registered()
        self.assertEqual((len(reg["prefill"]), len(reg["decode"])), (0, 1), reg)
        self.assertEqual(reg["decode"][0]["url"], sim.url)
        self.assertEqual(router.get("/registered_number").json(), {"mixed": 0, "prefill": 0, "decode": 1})

    def test_registered_number_and_shape_when_empty(self):
        router = self.h.start_router()
        r = router.get("/registered_number")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"mixed": 0, "prefill": 0, "decode": 0})
        self.assertEqual(router.registered(), {"code": 200, "msg": "success", "prefill": [], "decode": [],
                                               "mixed": []})


if __name__ == "__main__":
    fdharness.main()
