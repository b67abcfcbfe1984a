"""LLM-as-judge: verdict parsing, both-order bias cancelling, the endpoint client, a local judge."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.eval import judge as J


@pytest.mark.parametrize("reply,want", [
    ("A is more detailed. [[A]]", "A"), ("Final verdict: [[B]]", "B"), ("[[C]]", "tie"),
    ('Use "[[A]]" if A is better... After thought: [[B]]', "B"),  # the last verdict counts
    ("B", "B"), ("tie.", "tie"), ("I cannot decide", None), ("", None),
])
def test_parse_verdict(reply, want):
    assert J.parse_verdict(reply) == want


def _scripted(rule):
    """A judge that applies `rule(answer_a, answer_b) -> reply` to each conversation."""
    def ask(convs):
        out = []
        for c in convs:
            user = c[-1]["content"]
            a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
            b = user.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
            out.append(rule(a, b))
        return out
    return ask


def test_a_purely_position_biased_judge_yields_only_ties():
    res = J.pairwise(["q1", "q2", "q3"], ["b1", "b2", "b3"], ["t1", "t2", "t3"], _scripted(lambda a, b: "[[A]]"))
    m = res["metrics"]
    assert (m["wins"], m["losses"], m["ties"]) == (0, 0, 3)
    assert m["win_rate"] == 0.5 and m["consistency"] == 0.0


def test_a_consistent_judge_decides_and_the_rate_counts_ties_half():
    # Prefers the answer containing "good"; both answers good (or neither) -> [[C]].
    def rule(a, b):
        ga, gb = "good" in a, "good" in b
        return "[[A]]" if ga and not gb else "[[B]]" if gb and not ga else "[[C]]"

    base = ["meh", "good one", "meh", "good too"]
    tuned = ["good", "bad", "fine", "good also"]
    res = J.pairwise(["q"] * 4, base, tuned, _scripted(rule))
    m = res["metrics"]
    assert (m["wins"], m["losses"], m["ties"]) == (1, 1, 2)
    assert m["win_rate"] == pytest.approx((1 + 0.5 * 2) / 4)
    assert m["consistency"] == 1.0
    assert [r["winner"] for r in res["records"]] == ["tuned", "base", "tie", "tie"]
    assert m["win_rate_low"] < m["win_rate"] < m["win_rate_high"]


def test_unreadable_verdicts_are_counted_and_treated_as_ties():
    res = J.pairwise(["q", "q"], ["x", "y"], ["z", "w"], _scripted(lambda a, b: "no idea"))
    assert res["metrics"]["invalid_verdicts"] == 4 and res["metrics"]["ties"] == 2


class _Handler(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != "Bearer sekret":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "bad key"}}')
            return
        user = body["messages"][-1]["content"]
        verdict = "[[A]]" if "Assistant A's Answer]\nPREFERRED" in user else "[[B]]"
        reply = {"choices": [{"message": {"role": "assistant", "content": f"Reasoning... {verdict}"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Handler.seen = []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_endpoint_judge_speaks_the_openai_chat_protocol(endpoint, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sekret")
    ask = J.endpoint_judge(endpoint, "judge-model", api_key_env="JUDGE_KEY")
    res = J.pairwise(["q1", "q2"], ["PREFERRED", "plain"], ["plain", "PREFERRED"], ask)
    assert [r["winner"] for r in res["records"]] == ["base", "tuned"]
    assert len(_Handler.seen) == 4
    first = _Handler.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sekret"
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0
    assert first["body"]["messages"][0]["role"] == "system"


def test_endpoint_errors_are_user_errors(endpoint, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    with pytest.raises(TunesmithError, match="HTTP 401"):
        J.endpoint_judge(endpoint, "m", api_key_env="JUDGE_KEY")([[{"role": "user", "content": "x"}]])
    with pytest.raises(TunesmithError, match="cannot reach"):
        J.endpoint_judge("http://127.0.0.1:9/v1", "m", timeout_s=2)([[{"role": "user", "content": "x"}]])
    with pytest.raises(TunesmithError, match="names no model"):
        J.make_judge("http://127.0.0.1:9/v1")


def test_local_model_judge_answers_every_conversation(tiny_model_dir):
    ask = J.make_judge(str(tiny_model_dir), max_new_tokens=8)
    res = J.pairwise(["Which is better?"] * 2, ["one", "two"], ["three", "four"], ask)
    m = res["metrics"]
    assert m["wins"] + m["losses"] + m["ties"] == 2
    assert all(len(r["judge_replies"]) == 2 for r in res["records"])
