"""tests/integration/test_route_errors.py - every error of the public port's route table is JSON:
an unknown path gets 404, a known path asked with the wrong method 405 with an Allow header.
"""

import json

import fdharness
from fdharness import FdTestCase


class RouteErrorsTest(FdTestCase):
    def check(self, router, method, path, status, allow=None):
        r = fdharness.http_request(router.port, method, path, body=b"{}" if method == "POST" else None)
        self.assertEqual(r.status, status, r)
        self.assertIn("application/json", r.headers.get("content-type", ""))
        self.assertIn("error", json.loads(r.body))
        if allow:
            self.assertEqual(r.headers.get("allow"), allow)

    def test_unknown_path_and_wrong_method(self):
        router = self.h.start_router()
        self.check(router, "GET", "/no/such/route", 404)
        self.check(router, "GET", "/v1/chat/completions", 405, allow="POST")
        self.check(router, "POST", "/registered", 405, allow="GET")
        self.check(router, "DELETE", "/register", 405, allow="POST")
        # the routes themselves still answer
        self.assertEqual(router.get("/health").status, 200)


if __name__ == "__main__":
    fdharness.main()
