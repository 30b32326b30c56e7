"""tests/integration/test_tokenizer.py - cache_aware with a tokenizer service: the router asks the
service for token ids (asynchronously, with the URL completed to http://host:port/tokenize) and
hashes those, so two prompts with different text but the same ids share a prefix; when the
service is down, routing falls back to characters and requests still succeed.
"""

import http.server
import json
import threading

import fdharness
from fdharness import FdTestCase, wait_until


class Tokenizer:
    """A tokenizer service: one id per word, the word's length."""

    def __init__(self):
        self.calls = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.append((self.path, body))
                ids = [len(w) for w in body["text"].split()]
                out = json.dumps({"input_ids": ids}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((fdharness.HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def instance_of(resp):
    assert resp.status == 200, resp
    return resp.json()["sim_instance"]


class TokenizerTest(FdTestCase):
    def test_token_ids_decide_the_prefix(self):
        tok = Tokenizer()
        self.addCleanup(tok.stop)
        router = self.h.start_router(config={"scheduler": {
            "policy": "cache_aware", "cache-block-size": 4,
            "tokenizer-url": "%s:%d" % (fdharness.HOST, tok.port), "tokenizer-timeout-secs": 1}})
        for i in range(3):
            self.h.start_sim(name="s%d" % i, router=router, tokens=2)
        wait_until(lambda: len(router.selectable_urls()) == 3, 10, what="three sims selectable")

        # every load 0, no hit anywhere: the prompt goes where its hash says
        first = instance_of(router.chat(fdharness.chat_body("one two three")))
        hold = fdharness.Stream(router.port, "/v1/chat/completions",
                                fdharness.chat_body("one two three", stream=True, sim_tokens=100000,
                                                    sim_token_delay_ms=100))
        self.addCleanup(hold.close)
        held = json.loads(next(hold.events())[1])["sim_instance"]
        self.assertEqual(held, first, "the repeated prompt sticks to its instance")

        a = "aaa bbb cc dddd ee f ggg hh"
        b = "xyz uvw rs tuvw qp z abc de"  # other text, the same word lengths: the same token ids
        x = instance_of(router.chat(fdharness.chat_body(a)))  # a new prefix: where its hash says
        hold.close()
        router.wait_inflight_zero()
        for _ in range(3):
            self.assertEqual(instance_of(router.chat(fdharness.chat_body(b))), x,
                             "same token ids, so the same prefix: hashed ids, not characters")
        self.assertTrue(all(path == "/tokenize" for path, _ in tok.calls), tok.calls)
        self.assertEqual(tok.calls[-1][1], {"text": b, "prompt": b, "message": b})

        tok.stop()
        for i in range(3):
            self.assertEqual(router.chat(fdharness.chat_body("after %d" % i)).status, 200)
        wait_until(lambda: "tokenizer failed, fallback to char tokens" in router.proc.stdout(), 5,
                   what="the fallback logged")


if __name__ == "__main__":
    fdharness.main()
