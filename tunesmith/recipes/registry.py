"""The recipe tables: which function trains each recipe, and which record kinds it trains on.
Tables, not code (STYLE rule 7); `tunesmith.recipes` re-exports them."""

# recipe -> "module:function" under tunesmith.recipes
_ENTRY = {"sft": "sft:run", "cpt": "sft:run", "classify": "classify:run", "dpo": "preference:run",
          "kto": "preference:run", "orpo": "preference:run", "simpo": "preference:run",
          "reward": "preference:run", "grpo": "grpo:run", "ppo": "ppo:run",
          "vlm": "vlm:run"}

# recipe -> the record kinds (data/formats.py) it trains on; data validation checks them up front
KINDS = {"sft": ("chat", "classification"), "cpt": ("text",), "classify": ("classification",),
         "dpo": ("preference",), "kto": ("kto",), "orpo": ("preference",), "simpo": ("preference",),
         "reward": ("preference",), "grpo": ("chat", "prompt"), "ppo": ("chat", "prompt"),
         "vlm": ("vision", "chat")}
