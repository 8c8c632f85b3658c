"""A tiny LAION-style CLAP (transformers ClapModel + ClapProcessor) saved to a folder, for tests.

Same structure and front end as ``laion/clap-htsat-unfused`` / ``-fused`` (48 kHz,
10 s, 64 mels, hop 480, RoBERTa BPE tokenizer), at toy widths. Weights are
re-drawn with a larger spread than transformers' init so that embeddings, and
hence zero-shot probabilities, differ clearly between clips and prompts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

ESC10_LABELS = [
    "dog", "rooster", "rain", "sea waves", "crackling fire",
    "crying baby", "sneezing", "clock tick", "helicopter", "chainsaw",
]  # fmt: skip

PROJECTION_DIM = 12


def _tokenizer(folder: Path):  # noqa: ANN202 - a transformers RobertaTokenizer
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    corpus = [f"This is a sound of {label}." for label in ESC10_LABELS] + [
        "the sound of a dog barking", "water waves crashing on a beach", "a chainsaw cutting wood",
    ]  # fmt: skip
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus * 4, vocab_size=400, min_frequency=1, show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # RoBERTa ids 0..4
    )  # fmt: skip
    work = folder / "_bpe"
    work.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(work))
    vocab = json.loads((work / "vocab.json").read_text())
    merges = [
        tuple(line.split(" "))
        for line in (work / "merges.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return RobertaTokenizer(vocab=vocab, merges=merges)


def save_tiny_clap(folder: Path, fused: bool = False, seed: int = 0) -> Path:
    """Build, randomise and ``save_pretrained`` a tiny ClapModel with its processor; returns ``folder``."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    folder = Path(folder)
    tok = _tokenizer(folder)
    # The laion checkpoints' extractor: rand_trunc (Slaney mels) unfused, fusion (HTK mels) fused.
    fe = ClapFeatureExtractor(
        feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=10, fft_window_size=1024,
        frequency_min=50, frequency_max=14000, padding="repeatpad",
        truncation="fusion" if fused else "rand_trunc",
    )  # fmt: skip
    config = ClapConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        ),
        # spec_size 256 is the smallest that holds 1001 frames x 64 mels (freq_ratio 4).
        audio_config=dict(
            spec_size=256, window_size=8, patch_embeds_hidden_size=8, depths=[1, 1],
            num_attention_heads=[1, 2], hidden_size=16, num_hidden_layers=2,
            enable_fusion=fused, fusion_type="aff_2d" if fused else None,
        ),
        projection_dim=PROJECTION_DIM,
        logit_scale_init_value=100.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p[0].numel())))
        # Log-mel dB values are around -100..+20: give the input BatchNorm matching statistics.
        bn = model.audio_model.audio_encoder.batch_norm
        bn.running_mean.fill_(-40.0)
        bn.running_var.fill_(400.0)
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
    return folder
