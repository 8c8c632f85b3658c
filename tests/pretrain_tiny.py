"""Tiny pieces for the pretraining tests: a 2-layer BERT text tower and a tiny run config.

The tiny BERT reuses the packaged MiniLM's tokenizer (so real captions
tokenize) with random weights and 32-d hidden states: loading and running it
takes milliseconds instead of the MiniLM's seconds.
"""

from __future__ import annotations

from pathlib import Path

from tinyclap.pretrain.config import PretrainConfig

TINY_AUDIO = {"clip_seconds": 0.25, "n_mels": 32}


def build_tiny_text_model(out_dir: Path) -> Path:
    """Save a tiny random BERT + the MiniLM tokenizer in ``out_dir`` (a transformers model folder)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tinyclap.pretrain.text import default_text_model_dir

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(default_text_model_dir()), local_files_only=True)
    tokenizer.save_pretrained(str(out_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(out_dir))
    return out_dir


def tiny_config(text_model: Path, **changes: object) -> PretrainConfig:
    """A run that takes seconds: 0.25 s clips, a width-2 CNN14, 16-d space."""
    base = PretrainConfig(
        data=["synth?n=48&seed=0"],
        val_data=["synth?n=16&seed=1"],
        audio_encoder="cnn14:width=2,embed=32,dropout=0.0",
        dim=16,
        text_model=str(text_model),
        audio=dict(TINY_AUDIO),
        epochs=2,
        batch_size=16,
        lr=3e-3,
        log_every=1,
        warmup=0.0,
    )
    return base.updated(dict(changes))
