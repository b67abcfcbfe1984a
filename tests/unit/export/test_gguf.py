"""GGUF export (llama.cpp's converter and quantizer), the llama.cpp parity candidate, and the Ollama
Modelfile: a tiny merged checkpoint end to end, and a real SmolLM2 adapter (trained here) for q8_0
and q4_k_m against the trained model (base + adapter), through the parity gate both ways."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.export import gguf, ollama

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"

SAMPLES = [
    "Hello, world! How are you today?",
    "The quick brown fox jumps over 13 lazy dogs; naïve café — 東京 😀",
    "def add(a, b):\n    return a + b\n\n\n    # indented\ttab",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "   leading spaces and trailing   ",
]


def _need_llama_cpp():
    try:
        gguf.converter_path()
    except TunesmithError as e:
        pytest.skip(f"set-up step missing: {e}")
    pytest.importorskip("llama_cpp", reason=f"set-up step missing: {gguf.PIP_RUNTIME}")


@pytest.fixture(scope="module")
def tiny_merged(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny Llama with a random (non-zero) LoRA merged into it, saved like a merged export."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # B starts at zero; a non-zero B makes the merge change the weights
    merged = peft.merge_and_unload()
    out = tmp_path_factory.mktemp("tiny-merged")
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_merged, tmp_path_factory) -> dict[str, Path]:
    _need_llama_cpp()
    out = tmp_path_factory.mktemp("tiny-gguf")
    return {t: gguf.convert(tiny_merged, out, t) for t in ("q8_0", "f16")}


def _hf_argmax(model_dir: Path, ids: list[int]) -> list[int]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].argmax(-1).tolist()


def test_tiny_checkpoint_converts_to_q8_0_and_f16_with_chat_template(tiny_ggufs, tiny_merged):
    import llama_cpp
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_merged)
    for outtype, path in tiny_ggufs.items():
        assert path.name == f"model-{outtype}.gguf" and not list(path.parent.glob("*.partial"))
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        meta = llm.metadata
        assert meta["general.architecture"] == "llama" and llm.n_vocab() == len(tok)
        assert meta["tokenizer.chat_template"] == tok.chat_template
        # general.file_type is llama.cpp's llama_ftype of the file's weights
        ftype = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16}[outtype]
        assert int(meta["general.file_type"]) == ftype, (outtype, meta["general.file_type"])
        llm.close()
    assert tiny_ggufs["q8_0"].stat().st_size < tiny_ggufs["f16"].stat().st_size


def test_llama_cpp_tokenizes_like_the_hf_tokenizer(tiny_ggufs, tiny_merged):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_merged)
    with gguf.GGUFCandidate(tiny_ggufs["q8_0"], n_ctx=256) as cand:
        for text in SAMPLES:
            assert cand.tokenize(text) == tok(text, add_special_tokens=False)["input_ids"], text


def test_tiny_gguf_next_token_argmax_matches_transformers(tiny_ggufs, tiny_merged):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_merged)
    ids = tok(" ".join(SAMPLES), add_special_tokens=False)["input_ids"]
    ref = _hf_argmax(tiny_merged, ids)
    for outtype, path in tiny_ggufs.items():
        with gguf.GGUFCandidate(path, n_ctx=256) as cand:
            logits = cand.next_token_logits(ids)
            again = cand.next_token_logits(ids)  # reset between calls: no state carried over
            text = cand.greedy(SAMPLES[3], 8)
        assert logits.shape == (len(ids), len(tok)) and (logits == again).all()
        got = logits.argmax(-1).tolist()
        agree = sum(a == b for a, b in zip(got, ref)) / len(ref)
        print(f"tiny {outtype}: top-1 agreement {agree:.3f} over {len(ref)} positions")
        # f16 rounds weights at ~1e-3 relative: only exact near-ties flip. q8_0 moves them more, and
        # this random model's logits are nearly flat (measured: f16 1.000, q8_0 0.931 over 72).
        assert agree >= {"f16": 0.98, "q8_0": 0.85}[outtype], (outtype, agree)
        assert isinstance(text, str)


def test_convert_and_quantize_refuse_bad_arguments(tiny_merged, tmp_path, monkeypatch):
    with pytest.raises(TunesmithError, match="q4_k_m.*not one llama.cpp's converter writes"):
        gguf.convert(tiny_merged, tmp_path, "q4_k_m")
    with pytest.raises(TunesmithError, match="no config.json"):
        gguf.convert(tmp_path, tmp_path / "out", "f16")
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(TunesmithError, match="--install-converter"):
        gguf.convert(tiny_merged, tmp_path / "out", "f16")
    with pytest.raises(TunesmithError, match="--install-converter"):
        gguf.converter_path()


def test_quantize_errors(tiny_ggufs, tmp_path):
    with pytest.raises(TunesmithError, match="unknown GGUF quantization type 'q3_xyz'.*q4_k_m"):
        gguf.quantize(tiny_ggufs["f16"], tmp_path / "x.gguf", "q3_xyz")
    with pytest.raises(TunesmithError, match="does not exist"):
        gguf.quantize(tmp_path / "missing.gguf", tmp_path / "x.gguf", "q4_0")


def test_missing_llama_cpp_runtime_names_the_pip_command(tiny_merged, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    with pytest.raises(TunesmithError, match=r"pip install llama-cpp-python==0\.3\.36"):
        gguf.quantize(tmp_path / "model-f16.gguf", tmp_path / "q.gguf", "q4_k_m")
    with pytest.raises(TunesmithError, match="llama_cpp.*not installed"):
        gguf.GGUFCandidate(tiny_merged / "config.json")


def test_install_converter_from_an_sdist_keeps_only_the_converter(tmp_path, monkeypatch):
    import tarfile

    # A fake sdist with the real layout: only vendor/llama.cpp's converter files are taken.
    src = tmp_path / "src" / "llama_cpp_python-0.3.36"
    files = {"vendor/llama.cpp/convert_hf_to_gguf.py": "import sys\nprint('ok')\n",
             "vendor/llama.cpp/conversion/__init__.py": "",
             "vendor/llama.cpp/gguf-py/gguf/__init__.py": "",
             "vendor/llama.cpp/src/llama.cpp": "// not needed",
             "vendor/llama.cpp/convert_lora_to_gguf.py": "",
             "llama_cpp/llama.py": ""}
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    sdist = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    path = gguf.install_converter(sdist)
    assert path == gguf.converter_path() == tmp_path / "cache" / "llama.cpp-0.3.36" / "convert_hf_to_gguf.py"
    got = sorted(str(p.relative_to(path.parent)) for p in path.parent.rglob("*") if p.is_file())
    assert got == ["conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py",
                   "tunesmith-converter.json"]
    # A converter that cannot start (an import this Python lacks) is refused, and nothing is installed.
    (src / "vendor/llama.cpp/convert_hf_to_gguf.py").write_text("import no_such_module_tunesmith\n")
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    shutil.rmtree(path.parent)
    with pytest.raises(TunesmithError, match="no_such_module_tunesmith"):
        gguf.install_converter(sdist)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(TunesmithError, match="--install-converter"):
        gguf.converter_path()


# --------------------------------------------------------------------------- Ollama


def test_modelfile_for_smollm2_template_is_written_and_valid(tiny_ggufs, tiny_merged, tmp_path):
    path = ollama.write_modelfile(tiny_ggufs["q8_0"], tiny_merged, tiny_ggufs["q8_0"].parent)
    text = path.read_text()
    assert path.name == "Modelfile" and path.parent == tiny_ggufs["q8_0"].parent
    assert "\nFROM ./model-q8_0.gguf\n" in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "<|im_start|>assistant" in text
    assert ollama.validate_modelfile(path) == []
    entries = {w: a for _, w, a in ollama.parse_modelfile(text)}
    assert entries["TEMPLATE"] == ollama.families()["chatml"]["template"]
    # An explicit system prompt replaces the default; a Modelfile elsewhere points back with a relative path.
    other = ollama.write_modelfile(tiny_ggufs["q8_0"], tiny_merged, tmp_path / "elsewhere", system="Be terse.")
    assert 'SYSTEM """Be terse."""' in other.read_text() and "FROM ../" in other.read_text()
    assert ollama.validate_modelfile(other) == []


def test_validate_modelfile_reports_each_problem(tiny_ggufs, tmp_path):
    shutil.copy(tiny_ggufs["q8_0"], tmp_path / "m.gguf")
    bad = tmp_path / "Modelfile"
    bad.write_text('FROM ./m.gguf\nFROM ./gone.gguf\nTEMPERATURE 0.5\nPARAMETER top_q 0.9\n'
                   'PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|not_a_token|>"\n'
                   'TEMPLATE """{{ if .System }}{{ .System }}{{ .Nope }}{{ upper .Prompt }}"""\n')
    problems = "\n".join(ollama.validate_modelfile(bad))
    for expected in ("gone.gguf does not exist", "unknown instruction 'TEMPERATURE'", "unknown PARAMETER 'top_q'",
                     "'<|not_a_token|>' is not a token", "never closed", "unknown field .Nope",
                     "unknown function or keyword 'upper'"):
        assert expected in problems, expected
    assert "'<|im_end|>' is not" not in problems
    bad.write_text('FROM ./m.gguf\nTEMPLATE """{{ .Prompt }"""\nSYSTEM """never closed\n')
    problems = "\n".join(ollama.validate_modelfile(bad))
    assert "1 '{{' but 0 '}}'" in problems and "never closed" in problems


def test_every_family_template_passes_the_checker_and_is_detected():
    hf_templates = {  # the markers of each family's Hugging Face (Jinja) template
        "chatml": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
        "llama3": "<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>",
        "gemma": "<start_of_turn>{{ role }}\n{{ m.content }}<end_of_turn>\n",
        "mistral": "{{ bos_token }}[INST] {{ m.content }} [/INST]",
    }
    assert set(hf_templates) == set(ollama.families())
    for name, fam in ollama.families().items():
        assert ollama.check_template(fam["template"]) == [], name
        assert ollama.detect_family(hf_templates[name]) == name


def test_unknown_template_family_is_refused(tiny_merged, tiny_ggufs, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_merged)
    tok.chat_template = "{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}"
    tok.save_pretrained(tmp_path / "odd")
    with pytest.raises(TunesmithError, match="unknown chat template family.*supported families: chatml, llama3, "
                                             "gemma, mistral"):
        ollama.write_modelfile(tiny_ggufs["q8_0"], tmp_path / "odd", tmp_path)
    assert not (tmp_path / "Modelfile").exists()


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def smollm2_run(smollm2_dir, tmp_path_factory) -> Path:
    """A LoRA run on the embedded SmolLM2-135M trained here, so that the check never depends on a
    quickstart run lying around: 6 steps at a high learning rate on 48 quickstart rows (~15 s on 2
    cores) move the model far from its base (it answers records as JSON; measured against the base
    without the adapter: top-1 agreement 0.82, mean KL 0.56 nats)."""
    import tunesmith

    root = tmp_path_factory.mktemp("smollm2-run")
    data = root / "train.jsonl"
    data.write_text("\n".join((QUICKSTART / "train.jsonl").read_text().splitlines()[:64]) + "\n")
    return tunesmith.train({
        "name": "smol", "output_dir": str(root / "runs"), "seed": 3, "model": {"name": str(smollm2_dir)},
        "data": {"train": [str(data)], "validation_fraction": 0.25, "max_length": 256},
        "train": {"max_steps": 6, "batch_size": 4, "learning_rate": 2e-3, "logging_steps": 1, "save_steps": 1000,
                  "precision": "fp32"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}, show_progress=False)


@pytest.mark.integration
def test_smollm2_adapter_q8_0_and_q4_k_m_pass_the_parity_gate_and_the_base_model_fails_it(smollm2_run, smollm2_dir,
                                                                                          tmp_path):
    """A real SmolLM2 adapter merged, converted to q8_0 and quantized to q4_k_m, against base +
    adapter in transformers, with the product's prompts, position count and thresholds; and the
    gate's other side: the base model without the adapter must fail even the loosest (4-bit) bar."""
    _need_llama_cpp()
    from tunesmith.export import merge, parity
    from tunesmith.inference import load

    hf_dir = Path(merge.export_hf(smollm2_run, tmp_path)["hf_dir"])
    t0 = time.perf_counter()
    q8 = gguf.convert(hf_dir, tmp_path, "q8_0")
    f16 = gguf.convert(hf_dir, tmp_path, "f16")
    q4 = gguf.quantize(f16, tmp_path / "model-q4_k_m.gguf", "q4_k_m")
    print(f"\nconvert q8_0 and f16, quantize q4_k_m: {time.perf_counter() - t0:.1f} s; sizes MB: "
          + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f}" for p in (f16, q8, q4)))
    assert q4.stat().st_size < q8.stat().st_size < f16.stat().st_size
    f16.unlink()

    # The reference as export() builds it: generic prompts, then run rows up to MIN_POSITIONS positions.
    loaded = load(str(smollm2_run))
    pool = parity.build_prompts(smollm2_run, loaded.tokenizer, parity.MAX_RUN_PROMPTS)
    ref = parity.reference_outputs(loaded, pool, min_prompts=len(parity.PROMPTS) + 8,
                                   min_positions=parity.MIN_POSITIONS)
    del loaded
    positions = sum(len(r["top1"]) for r in ref)
    assert positions >= parity.MIN_POSITIONS and all(len(r["reply_ids"]) >= 5 for r in ref)

    results = {}
    for kind, path in (("q8_0", q8), ("q4_k_m", q4)):
        with gguf.GGUFCandidate(path, n_ctx=512) as cand:
            results[kind] = parity.compare(ref, cand, kind=kind)
    results["base"] = parity.compare(ref, parity.HFCandidate(smollm2_dir, name="base"), kind="q4_k_m")
    for name, r in results.items():
        print(f"{name}: top-1 {r['top1_agreement']:.3f} (95% low {r['top1_ci95_low']:.3f}) over {r['positions']} "
              f"positions, mean KL {r['kl_mean']:.4f}; greedy text {r['greedy_text_agreement']:.2f} of "
              f"{r['prompts']}, first divergence {r['first_divergence']}")
    # Measured (this run, fp32 training): q8_0 top-1 0.983, lower bound 0.963, KL 0.0025; q4_k_m 0.955,
    # 0.927, 0.037; base 0.824, 0.781, 0.56. Greedy text (0.58 and 0.42 of 12 prompts here) is not gated.
    for kind in ("q8_0", "q4_k_m"):
        r = results[kind]
        assert r["passed"] and r["shortfall"] == "", (kind, r["shortfall"])
        assert r["positions"] == positions and r["thresholds"] == parity.thresholds_for(kind)
    assert results["q8_0"]["kl_mean"] < results["q4_k_m"]["kl_mean"]  # 8 bits are closer than 4
    base = results["base"]
    assert not base["passed"] and base["greedy_text_agreement"] < 0.5 and base["first_divergence"] is not None
    assert "95% lower bound" in base["shortfall"] and "mean KL divergence" in base["shortfall"]

    modelfile = ollama.write_modelfile(q4, hf_dir, tmp_path)
    assert ollama.validate_modelfile(modelfile) == []


# --------------------------------------------------------------------------- templates render like HF's
# No ollama (Go) binary here, so the Modelfile templates are rendered by a small interpreter of the
# Go text/template subset they use (trim markers, if/else if/else, range with $i/$m, :=/= variables,
# eq/ne/and/or/not/len/slice). It checks the whitespace and turn markers against the model's own
# chat template, which is where a hand-written template goes wrong.

def _go_render(template: str, data: dict) -> str:
    import re

    parts = re.split(r"(\{\{-?\s?.*?\s?-?\}\})", template, flags=re.DOTALL)
    items = []  # ("text", s) | ("act", code)
    for i, p in enumerate(parts):
        if p.startswith("{{"):
            code = p[2:-2]
            if code.startswith("- "):
                items and items[-1][0] == "text" and items.append(("text", items.pop()[1].rstrip()))
            if code.endswith(" -") and i + 1 < len(parts):
                parts[i + 1] = parts[i + 1].lstrip()
            items.append(("act", code.strip("- ").strip()))
        elif p:
            items.append(("text", p))

    def parse(pos):  # -> (nodes, pos, terminator)
        nodes = []
        while pos < len(items):
            kind, val = items[pos]
            pos += 1
            if kind == "text":
                nodes.append(("text", val))
                continue
            word = val.split(None, 1)[0]
            if word in ("end", "else"):
                return nodes, pos, val
            if word == "if":
                branches, cond = [], val[3:]
                while True:
                    body, pos, term = parse(pos)
                    branches.append((cond, body))
                    if term == "end":
                        break
                    cond = term[8:] if term.startswith("else if") else "true"
                nodes.append(("if", branches))
            elif word == "range":
                body, pos, _ = parse(pos)
                nodes.append(("range", val[6:], body))
            else:
                nodes.append(("act", val))
        return nodes, pos, None

    def tokens(expr):
        return re.findall(r'"[^"]*"|\(|\)|:=|,|[^\s(),]+', expr)

    def value(tok, dot, env):
        if tok.startswith('"'):
            return tok[1:-1]
        if tok.isdigit():
            return int(tok)
        if tok == "true":
            return True
        base, *path = tok.split(".")
        obj = dot if base == "" else env[base]
        for f in path:
            obj = obj.get(f) if isinstance(obj, dict) else getattr(obj, f)
        return obj

    funcs = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "not": lambda a: not a, "len": len,
             "and": lambda *a: next((x for x in a if not x), a[-1]), "slice": lambda s, i: s[i:],
             "or": lambda *a: next((x for x in a if x), a[-1])}

    def evaluate(toks, dot, env):
        def term(i):
            if toks[i] == "(":
                args, i = [], i + 1
                while toks[i] != ")":
                    v, i = term(i)
                    args.append(v)
                return (args[0](*args[1:]) if callable(args[0]) else args[0]), i + 1
            if toks[i] in funcs:
                return funcs[toks[i]], i + 1
            return value(toks[i], dot, env), i + 1

        vals, i = [], 0
        while i < len(toks):
            v, i = term(i)
            vals.append(v)
        return vals[0](*vals[1:]) if callable(vals[0]) else vals[0]

    def run(nodes, dot, env):
        out = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "if":
                for cond, body in node[1]:
                    if evaluate(tokens(cond), dot, env):
                        out.append(run(body, dot, env))
                        break
            elif node[0] == "range":
                toks = tokens(node[1])
                names = [t for t in toks[: toks.index(":=")] if t != ","]
                for i, item in enumerate(evaluate(toks[toks.index(":=") + 1:], dot, env)):
                    env.update(zip(names, (i, item)))  # one flat scope: enough for these templates
                    out.append(run(node[2], item, env))
            else:
                toks = tokens(node[1])
                if len(toks) > 1 and toks[1] in (":=", "="):  # declare / assign ($system = "")
                    env[toks[0]] = evaluate(toks[2:], dot, env)
                else:
                    out.append(str(evaluate(toks, dot, env)))
        return "".join(out)

    return run(parse(0)[0], data, {"$": data})


def test_chatml_template_renders_like_the_smollm2_chat_template(tokenizer):
    template = ollama.families()["chatml"]["template"]
    system = ollama.default_system_prompt(tokenizer, "chatml")
    assert system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    convs = [[{"role": "user", "content": "Hi there"}],
             [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Name a colour.\nJust one."}]]
    for conv in convs:
        for sys_prompt in (system, "Answer in French."):
            want = tokenizer.apply_chat_template([{"role": "system", "content": sys_prompt}] + conv, tokenize=False,
                                                 add_generation_prompt=True)
            # Ollama passes the Modelfile's SYSTEM both as .System and as a leading system message.
            messages = [{"Role": m["role"], "Content": m["content"]} for m in
                        [{"role": "system", "content": sys_prompt}] + conv]
            # .Response is "" when Ollama renders a prompt to complete (the template ends with it).
            assert _go_render(template, {"System": sys_prompt, "Messages": messages, "Response": ""}) == want
        # /api/generate: one prompt, no Messages
        want = tokenizer.apply_chat_template([{"role": "system", "content": system}, conv[-1]], tokenize=False,
                                             add_generation_prompt=True)
        assert _go_render(template, {"System": system, "Prompt": conv[-1]["content"], "Messages": [],
                                     "Response": ""}) == want


def test_other_family_templates_render_their_turn_format():
    conv = [{"Role": "system", "Content": "SYS"}, {"Role": "user", "Content": "Hi"},
            {"Role": "assistant", "Content": "Yo"}, {"Role": "user", "Content": "Bye"}]
    want = {
        "llama3": "<|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|><|start_header_id|>user<|end_header_id|>"
                  "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|><|start_header_id|>"
                  "user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "gemma": "<start_of_turn>user\nSYS\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
                 "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
        "mistral": "[INST] Hi[/INST] Yo</s>[INST] SYS\n\nBye[/INST]",
    }
    for name, expected in want.items():
        template = ollama.families()[name]["template"]
        assert _go_render(template, {"System": "SYS", "Messages": conv, "Response": ""}) == expected, name
