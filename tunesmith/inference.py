"""Load a run or a model for inference, generate (batched), and chat interactively."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith import runs
from tunesmith.errors import TunesmithError, fail


@dataclass
class Loaded:
    """A model ready to generate, and what it is."""

    model: object
    tokenizer: object
    description: str


def load(run_or_model: str) -> Loaded:
    """A run directory (base model + its adapter, or its full model) or any model name."""
    from transformers import AutoTokenizer

    from tunesmith.hardware import use_threads
    from tunesmith.models.loading import load_model, load_tokenizer, resolve
    from tunesmith.models.quant import quiet_bitsandbytes

    quiet_bitsandbytes()  # before peft imports bitsandbytes
    use_threads()  # one per core not busy with other processes (see hardware.py)
    path = Path(run_or_model)
    if path.is_dir() and (path / runs.MANIFEST_FILE).exists() and not runs.is_run_dir(path):
        raise fail(f"{path} looks like a run directory but has no {runs.CONFIG_FILE}", "point at a complete run")
    if runs.is_run_dir(path):
        from tunesmith.config import load_config

        cfg = load_config(path / runs.CONFIG_FILE)
        manifest = runs.read_manifest(path) or {}
        if manifest.get("status") != "completed":
            raise fail(f"run {path} has not finished training (status: {manifest.get('status')})",
                       "finish it with `tunesmith train` on its config, or use a checkpoint folder")
        if cfg.recipe == "vlm":
            raise fail(f"run {path} is a vision-language run (recipe: vlm); generate, chat, eval and serve take "
                       "text-only models so far",
                       "load it with transformers AutoModelForImageTextToText and peft PeftModel.from_pretrained on "
                       "its adapter/ folder (docs/vision.md shows how)")
        if (path / "model").is_dir():  # full fine-tune: a complete checkpoint
            source = resolve(str(path / "model"))
            return Loaded(load_model(source), load_tokenizer(source), f"{path} (full fine-tune)")
        if not (path / "adapter" / "adapter_config.json").exists():
            raise fail(f"run {path} has neither adapter/ nor model/", "retrain it, or point at another run")
        from peft import PeftModel

        source = resolve(cfg.model.name, cfg.model.gguf_file)
        # the run's stretched positions (model.rope_scaling) come back with its base
        base = load_model(source, cfg.model.trust_remote_code, rope=(cfg.model.rope_scaling, cfg.model.rope_factor))
        model = PeftModel.from_pretrained(base, str(path / "adapter"))
        # The adapter folder carries the tokenizer the run trained with (chat template included).
        return Loaded(model.eval(), _pad(AutoTokenizer.from_pretrained(path / "adapter")),
                      f"{cfg.model.name} + {path / 'adapter'}")
    from tunesmith.models.registry import embedded_models

    if embedded_models().get(run_or_model, {}).get("kind") == "encoder":
        raise fail(f"'{run_or_model}' is an encoder: it classifies or embeds text, it does not generate",
                   "generate with a causal LM, e.g. smollm2-135m-instruct, or train it with recipe: classify")
    try:
        source = resolve(run_or_model)
    except TunesmithError as e:
        if path.is_dir():  # neither a run nor a checkpoint: say both, not "model.name"
            raise fail(f"{path} is neither a run directory (config.yaml + manifest.json) nor a model checkpoint "
                       "(config.json)", "pass runs/NAME, a checkpoint folder, a .gguf file or an embedded model "
                       "name") from None
        raise e
    return Loaded(load_model(source).eval(), load_tokenizer(source), source.spec)


@dataclass
class Generator:
    """A loaded model as the plain function that data augmentation and synthesis take:
    `generator(conversations, max_new_tokens=..., temperature=..., seed=...)` returns the replies.

    They take a function rather than load a model themselves, so tunesmith.data never imports the
    model stage, and a test (or another backend) can hand them any function of that shape.
    `count_tokens` lets them tell a reply cut off at max_new_tokens from a finished one."""

    loaded: Loaded

    @property
    def description(self) -> str:
        return self.loaded.description

    def __call__(self, conversations: list[list[dict]], **sampling) -> list[str]:
        return generate(self.loaded, conversations, **sampling)

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


def _pad(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def generate(loaded: Loaded, conversations: list[list[dict]] | list[str], max_new_tokens: int = 128,
             temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 8, seed: int | None = None,
             chat: bool = True, stop: list[str] | None = None) -> list[str]:
    """Replies to each conversation (a list of {role, content}); greedy when temperature == 0.

    With chat=False the items are raw prompt strings that the model continues (base models, code
    completion). Each reply is cut at the first of the `stop` strings."""
    import torch

    from tunesmith.data.templates import require_template

    tok, model = loaded.tokenizer, loaded.model
    if chat:
        require_template(tok)
    if seed is not None:
        torch.manual_seed(seed)
    tok.padding_side = "left"  # decoder-only models continue from the right edge
    # Stop at the tokenizer's EOS and at every EOS the generation config names (chat models often
    # end turns with a token other than the tokenizer's EOS, e.g. Llama 3's <|eot_id|>).
    gen_eos = getattr(model.generation_config, "eos_token_id", None)
    stop_ids = {tok.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])} - {None}
    from tunesmith.hardware import recheck_threads

    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) if chat else c
             for c in conversations]
    # Batches of prompts of similar length, longest first (an out-of-memory shows at once): a short
    # prompt batched with long ones pays for their left padding at every decoding step. Replies come
    # back in the callers' order.
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []
    order = sorted(range(len(texts)), key=lambda k: -lengths[k])
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}
    out: list[str] = [""] * len(texts)
    for i in range(0, len(order), batch_size):
        recheck_threads()  # follow other processes' load between batches (see hardware.py)
        idx = order[i: i + batch_size]
        enc = tok([texts[k] for k in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            # generate() stops a batch once every row has hit an EOS or (stop_strings) a stop string;
            # the cut below makes the stop exact.
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=sorted(stop_ids), **sampling,
                                 **({"stop_strings": stop, "tokenizer": tok} if stop else {}))
        for k, row in zip(idx, ids[:, enc["input_ids"].shape[1]:]):
            text = tok.decode(row, skip_special_tokens=True)
            out[k] = _cut(text, stop) if not chat else text.strip()
    return out


def _cut(text: str, stop: list[str] | None) -> str:
    """A raw continuation up to the first stop string; leading whitespace is kept (code indents)."""
    ends = [text.find(s) for s in stop or () if s in text]
    return (text[:min(ends)] if ends else text).rstrip()


def chat_loop(loaded: Loaded, system: str | None = None, max_new_tokens: int = 256, temperature: float = 0.7,
              input_fn=input, print_fn=print) -> None:
    """Interactive chat that keeps the conversation; /reset clears it, /exit (or EOF) leaves."""
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    start = list(history)
    print_fn(f"chatting with {loaded.description}  (/reset clears the conversation, /exit leaves)")
    while True:
        try:
            line = input_fn("you> ")
        except (EOFError, KeyboardInterrupt):
            print_fn("")
            return
        text = line.strip()
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            history = list(start)
            print_fn("(conversation cleared)")
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        reply = generate(loaded, [history], max_new_tokens=max_new_tokens, temperature=temperature)[0]
        history.append({"role": "assistant", "content": reply})
        print_fn(f"bot> {reply}")
