"""/v1/files through the official `openai` client against a live server: upload (validated, with
file:line problems in the refusal), list, retrieve, content, delete, the API key, bounds, and a
restarted store that still has its files."""

from __future__ import annotations

import json

import openai
import pytest
from live_server import Live

from tunesmith.serve.files import FileStore

KEY = "sk-files-test"
GOOD = [{"instruction": "Say hi.", "output": "Hi!"}, {"messages": [{"role": "user", "content": "2+2?"},
                                                                    {"role": "assistant", "content": "4"}]}]


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir):
    from tunesmith.serve.app import create_app
    from tunesmith.serve.backends import TransformersBackend

    root = tmp_path_factory.mktemp("service")
    backend = TransformersBackend(str(tiny_model_dir))
    server = Live(create_app(backend, api_key=KEY, files=FileStore(root), max_file_bytes=20_000), KEY)
    yield server, root
    server.stop()
    backend.close()


def _jsonl(tmp_path, name, rows) -> str:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_upload_list_retrieve_content_delete(live, tmp_path):
    server, root = live
    client = server.make_client()
    path = _jsonl(tmp_path, "train.jsonl", GOOD)
    with open(path, "rb") as f:
        created = client.files.create(file=f, purpose="fine-tune")
    assert created.id.startswith("file-") and created.filename == "train.jsonl"
    assert created.bytes == path.stat().st_size and created.purpose == "fine-tune" and created.status == "processed"
    assert client.files.retrieve(created.id).filename == "train.jsonl"
    assert created.id in [f.id for f in client.files.list()]
    assert client.files.content(created.id).read() == path.read_bytes()
    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert not list((root / "files").glob(f"{created.id}*"))


def test_a_bad_file_is_refused_with_its_lines(live, tmp_path):
    server, root = live
    path = _jsonl(tmp_path, "bad.jsonl", [GOOD[0], "{not json", {"instruction": "no output"}, GOOD[1]])
    with open(path, "rb") as f, pytest.raises(openai.BadRequestError) as info:
        server.make_client().files.create(file=f, purpose="fine-tune")
    message = info.value.body["message"]
    assert "bad.jsonl:2:" in message and "bad.jsonl:3:" in message and "bad.jsonl:1:" not in message
    assert info.value.body["code"] == "invalid_file" and str(root) not in message  # no server path shown
    assert not [p for p in (root / "files").iterdir() if "bad" in p.name or p.name.startswith(".")]


def test_bounds_purpose_names_and_the_key(live, tmp_path):
    server, root = live
    client = server.make_client()
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("t.jsonl", json.dumps(GOOD[0]).encode()), purpose="assistants")
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.jsonl", (json.dumps(GOOD[0]) + "\n").encode() * 1000), purpose="fine-tune")
    assert info.value.status_code == 413
    with pytest.raises(openai.BadRequestError, match="not training data"):
        client.files.create(file=("run.sh", b"rm -rf /\n"), purpose="fine-tune")
    created = client.files.create(file=("../../etc/passwd.jsonl", json.dumps(GOOD[0]).encode()), purpose="fine-tune")
    assert created.filename == "passwd.jsonl"  # a label only: stored under its id, inside the service folder
    assert [p.parent for p in root.rglob(f"{created.id}*")] == [root / "files"]
    with pytest.raises(openai.AuthenticationError):
        server.make_client(key="wrong").files.list()


def test_files_survive_a_restart(tmp_path):
    store = FileStore(tmp_path)
    record = store.add("a.jsonl", (json.dumps(GOOD[0]) + "\n").encode(), "fine-tune")
    again = FileStore(tmp_path)  # a new process would open the same database
    assert again.get(record["id"])["filename"] == "a.jsonl" and again.get(record["id"])["rows"] == 1
    store.delete(record["id"])
    assert FileStore(tmp_path).get(record["id"]) is None
