"""A tiny random vision-language model of a real architecture (LLaVA: a CLIP vision tower, a
projector and a Llama language model) with the real SmolLM2 tokenizer, and small generated images.

Built offline in about two seconds: CLIP sees 32x32 images in 8x8 patches, so each image becomes
16 image tokens. Imported by the tests that need it (tests/ is on sys.path through conftest.py).
"""

from __future__ import annotations

from pathlib import Path

# ChatML, as SmolLM2's own template, over content that is a string or a list of text and image parts
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
IMAGE_TOKENS = 16  # (32 / 8)^2 patches; the CLS feature is dropped (vision_feature_select_strategy=default)


def build_tiny_llava(out: Path, tokenizer_dir: Path) -> Path:
    """Save a random tiny LLaVA and its processor to `out`; returns `out`. The PIL image processor:
    the default one wants torchvision, which tunesmith does not need."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=8, num_additional_image_tokens=1,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 20)) -> Path:
    """A small PNG: one colour with a diagonal stripe, so images differ in more than their mean."""
    from PIL import Image

    im = Image.new("RGB", size, color)
    for i in range(min(size)):
        im.putpixel((i, i), (255 - color[0], 255 - color[1], 255 - color[2]))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path
