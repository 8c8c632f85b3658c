"""AudioStudent: the paper's parameter counts, the forward contract, names, presets, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyclap.audio import AudioConfig, fit_length, load_audio
from tinyclap.errors import CheckpointError
from tinyclap.students import (
    AudioStudent,
    StudentConfig,
    StudentConfigError,
    convert_reference_state_dict,
    list_presets,
    load_preset,
    load_reference_checkpoint,
    load_student,
    save_preset,
    save_student,
)
from tinyclap.students.encoder import Projection

ALPHA_1_5 = "phinet_alpha_1.50_beta_0.75_t0_6_N_7"
ALPHA_3 = "phinet_alpha_3.00_beta_0.75_t0_6_N_7"
TINY = StudentConfig(alpha=0.25, beta=0.75, t0=2, num_layers=4, embed_width=32, dim=16)
TINY_AUDIO = AudioConfig(sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512, hop_length=160,
                         n_mels=32, fmin=50.0, fmax=8000.0)  # fmt: skip


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so eval outputs depend on them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model


def test_parameter_counts_match_the_paper_exactly():
    # Built on the meta device: same modules and shapes, no weights to initialise.
    small = AudioStudent(StudentConfig.from_name(ALPHA_1_5), frontend=False, device="meta")
    assert small.num_parameters() == 4_434_547
    big = AudioStudent(StudentConfig.from_name(ALPHA_3), frontend=False, device="meta")
    assert sum(p.numel() for p in big.parameters()) == 7_035_849
    assert sum(p.numel() for p in big.projection.parameters()) == 3_147_776
    # The real (CPU) student has the same count: see the forward test, which builds it.


def test_reference_forward_shapes_and_unit_norm():
    torch.manual_seed(0)
    student = randomise_bn(AudioStudent.from_name(ALPHA_1_5)).eval()
    assert student.num_parameters() == 4_434_547
    logmel = torch.randn(2, 690, 64) * 10 - 40
    with torch.no_grad():
        out = student(logmel)
        pooled = student.features(logmel)
    assert out.shape == (2, 1024) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    assert pooled.shape == (2, 2048)
    torch.testing.assert_close(student.head(pooled), out)  # features/head split == forward
    assert student.dim == 1024 and student.embed_width == 2048


def test_features_then_head_equals_forward_for_any_window_length():
    torch.manual_seed(1)
    student = randomise_bn(AudioStudent(TINY, TINY_AUDIO)).eval()
    for frames in (101, 37):
        x = torch.randn(3, frames, 32)
        with torch.no_grad():
            torch.testing.assert_close(student.head(student.features(x)), student(x))
    with pytest.raises(ValueError, match="64"):
        AudioStudent.from_name(ALPHA_1_5)(torch.zeros(1, 100, 32))


def test_bn0_normalises_each_mel_bin_and_folds_into_an_affine_map():
    torch.manual_seed(2)
    student = randomise_bn(AudioStudent(TINY, TINY_AUDIO), seed=3).eval()
    x = torch.randn(2, 50, 32)
    scale, shift = student.mel_affine()
    assert scale.shape == shift.shape == (32,)
    with torch.no_grad():
        via_bn0 = student.bn0(x.unsqueeze(1).transpose(1, 3)).transpose(1, 3)[:, 0]
    torch.testing.assert_close(via_bn0, x * scale + shift)
    # Training updates bn0's running stats per mel bin with PyTorch's momentum 0.1.
    fresh = AudioStudent(TINY, TINY_AUDIO).train()
    bins = torch.arange(32.0)
    fresh(torch.zeros(4, 20, 32) + bins)
    torch.testing.assert_close(fresh.bn0.running_mean, 0.1 * bins)


def test_head_activation_choice():
    relu = AudioStudent(TINY.replace(head_act="relu"), TINY_AUDIO)
    gelu = AudioStudent(TINY, TINY_AUDIO)
    assert isinstance(relu.projection.act, nn.ReLU) and not any(isinstance(m, nn.GELU) for m in relu.modules())
    assert isinstance(gelu.projection.act, nn.GELU)
    with pytest.raises(StudentConfigError):
        TINY.replace(head_act="swish")


def test_projection_matches_ms_clap_formula():
    torch.manual_seed(4)
    proj = Projection(8, 6, dropout=0.5).eval()
    assert sum(p.numel() for p in Projection(2048, 1024).parameters()) == 3_147_776
    x = torch.randn(5, 8)
    e1 = x @ proj.linear1.weight.T
    expected = nn.functional.layer_norm(e1 + nn.functional.gelu(e1) @ proj.linear2.weight.T, (6,),
                                        proj.layer_norm.weight, proj.layer_norm.bias)  # fmt: skip
    torch.testing.assert_close(proj(x), expected)


@pytest.mark.parametrize(
    "config",
    [
        StudentConfig(1.5, 0.75, 6, 7),
        StudentConfig(3.0, 0.75, 6, 7),
        StudentConfig(0.125, 1.0, 4.5, 9),
        StudentConfig(0.35, 0.5, 2, 5),
    ],
)
def test_name_round_trip(config: StudentConfig):
    assert StudentConfig.from_name(config.name) == config


def test_names_of_the_reference_code():
    cfg = StudentConfig.from_name(ALPHA_1_5)
    assert (cfg.alpha, cfg.beta, cfg.t0, cfg.num_layers) == (1.5, 0.75, 6, 7)
    assert cfg.name == ALPHA_1_5
    assert StudentConfig(3, 0.75, 6, 7).name == ALPHA_3
    student = AudioStudent.from_name(ALPHA_1_5, dim=256, head_act="relu", embed_width=512)
    assert (student.dim, student.embed_width, student.config.head_act) == (256, 512, "relu")
    for bad, why in [
        ("resnet_alpha_1", "not a student name"),
        ("phinet_alpha_1.5_beta_0.75_t0_6", "missing N"),
        ("phinet_alpha_x_beta_0.75_t0_6_N_7", "alpha must be a number"),
        ("phinet_alpha_1_beta_1_t0_6_N_7_gamma_2", "unknown field 'gamma'"),
        ("phinet_alpha_1_beta_1_t0_6_N_7.5", "N must be an integer"),
    ]:
        with pytest.raises(StudentConfigError, match=why):
            StudentConfig.from_name(bad)


def test_presets_load_by_name_and_path(tmp_path: Path):
    assert {ALPHA_1_5, ALPHA_3} <= set(list_presets())
    cfg, audio = load_preset(ALPHA_3)
    assert cfg == StudentConfig.from_name(ALPHA_3) and audio == AudioConfig()
    assert AudioStudent.from_name(ALPHA_1_5).config == StudentConfig.from_name(ALPHA_1_5)
    path = save_preset(tmp_path / "mine.yaml", TINY.replace(head_act="relu"), TINY_AUDIO, "a test preset")
    cfg2, audio2 = load_preset(path)
    assert cfg2 == TINY.replace(head_act="relu") and audio2 == TINY_AUDIO
    student = AudioStudent.from_name(str(path))
    assert student.config == cfg2 and student.audio_config == TINY_AUDIO
    with pytest.raises(StudentConfigError, match="no such student preset"):
        load_preset("not_a_preset")
    (tmp_path / "bad.yaml").write_text("student: [1, 2]\n")
    with pytest.raises(StudentConfigError, match="'student:' mapping"):
        load_preset(tmp_path / "bad.yaml")


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path):
    torch.manual_seed(5)
    student = randomise_bn(AudioStudent(TINY.replace(head_act="relu"), TINY_AUDIO)).eval()
    student.kept_dims = list(range(100, 116))
    path = save_student(tmp_path / "ckpt" / "student", student, teacher="msclap-2022", stage=1, metrics={"loss": 0.5})
    meta = json.loads(path.read_text())
    assert meta["kind"] == "student" and meta["teacher"] == "msclap-2022" and meta["dim"] == 16
    assert meta["params"] == student.num_parameters() and meta["name"] == TINY.name
    loaded = load_student(path)
    assert not loaded.training and loaded.kept_dims == list(range(100, 116))
    assert loaded.config == student.config and loaded.audio_config == TINY_AUDIO
    assert loaded.meta["stage"] == 1
    x = torch.randn(2, 101, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), student(x))
    with pytest.raises(ValueError, match="kind"):
        save_student(tmp_path / "x", student, kind="teacher")


def test_a_pruned_head_reloads_with_its_own_width(tmp_path: Path):
    torch.manual_seed(6)
    student = AudioStudent(TINY, TINY_AUDIO).eval()
    # What pruning does: a k-wide head (here built directly) and the teacher dims it keeps.
    k = 5
    student.projection = Projection(TINY.embed_width, k, act="gelu").eval()
    student.kept_dims = [1, 3, 5, 7, 9]
    loaded = load_student(save_student(tmp_path / "pruned", student))
    assert loaded.dim == k and loaded.config.dim == k and loaded.kept_dims == [1, 3, 5, 7, 9]
    x = torch.randn(1, 101, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), student(x))


def test_load_student_refuses_foreign_or_broken_files(tmp_path: Path):
    path = save_student(tmp_path / "s", AudioStudent(TINY, TINY_AUDIO))
    meta = json.loads(path.read_text())
    meta["config"]["alpha"] = 0.5  # weights no longer fit the architecture
    (tmp_path / "s.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_student(path)
    meta["kind"] = "teacher"
    (tmp_path / "s.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="expected 'student'"):
        load_student(path)
    with pytest.raises(CheckpointError):
        load_student(tmp_path / "missing")


def test_embed_audio_on_real_clips(esc10_files):
    audio = AudioConfig().with_seconds(1.0)
    torch.manual_seed(7)
    student = randomise_bn(AudioStudent(TINY.replace(dim=24), audio)).train()
    clips = np.stack([fit_length(load_audio(f, audio.sample_rate), audio.clip_samples) for f in esc10_files[:3]])
    emb = student.embed_audio(clips)
    assert emb.shape == (3, 24) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert student.training  # the previous mode is restored
    torch.testing.assert_close(student.embed_audio(clips[0]), emb[:1])  # (S,) works and is deterministic
    assert not torch.allclose(emb[0], emb[1])  # different sounds, different embeddings
    with torch.no_grad():
        student.eval()
        torch.testing.assert_close(student(student.frontend(torch.from_numpy(clips))), emb)
    with pytest.raises(RuntimeError, match="frontend=False"):
        AudioStudent(TINY, audio, frontend=False).embed_audio(clips)


# ---- weights trained by the tinyCLAP reference code (micromind PhiNet key names)


def reference_keys(config: StudentConfig) -> list[str]:
    """State-dict keys of the reference ``AudioEncoder`` (micromind ``PhiNet`` + ``bn0`` +
    ``pn_block`` + ``Projection``), in its order, written out from the reference layout."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["base._layers.1._layers.0.weight", "base._layers.1._layers.1.weight"]  # stem: depthwise, pointwise
    keys += [f"base._layers.1._layers.2.{k}" for k in bn]
    # block 0: dropout(0), depthwise(1), bn(2), act(3), conv(4), bn(5)
    keys += ["base._layers.2._layers.1.weight"] + [f"base._layers.2._layers.2.{k}" for k in bn]
    keys += ["base._layers.2._layers.4.weight"] + [f"base._layers.2._layers.5.{k}" for k in bn]
    for i in range(config.num_layers):  # expand(0) bn(1) act(2) drop(3) dw(4) bn(5) act(6) conv(7) bn(8)
        p = f"base._layers.{3 + i}._layers"
        keys += [f"{p}.0.weight"] + [f"{p}.1.{k}" for k in bn] + [f"{p}.4.weight"] + [f"{p}.5.{k}" for k in bn]
        keys += [f"{p}.7.weight"] + [f"{p}.8.{k}" for k in bn]
    keys += [f"base.bn0.{k}" for k in bn] + ["base.pn_block.weight", "base.pn_block.bias"]
    keys += ["projection.linear1.weight", "projection.linear2.weight", "projection.layer_norm.weight",
             "projection.layer_norm.bias"]  # fmt: skip
    return keys


def test_reference_checkpoint_weights_land_on_the_right_layers(tmp_path: Path):
    student = AudioStudent(TINY, TINY_AUDIO)
    keys = reference_keys(TINY)
    ours = student.state_dict()
    assert len(keys) == len(ours)
    g = torch.Generator().manual_seed(8)
    # Shapes come from our model in the reference's order (backbone, bn0, pn_block, projection);
    # what is tested is where each named tensor goes.
    ordered = [v for prefix in ("backbone.", "bn0.", "conv.", "projection.") for k, v in ours.items() if k.startswith(prefix)]
    ref = {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
           for k, v in zip(keys, ordered)}  # fmt: skip
    ref = {f"module.{k}": v for k, v in ref.items()}  # DataParallel prefix is stripped
    converted = convert_reference_state_dict(ref, student)
    for ref_key, our_key in [
        ("base._layers.1._layers.1.weight", "backbone.stem.pointwise.weight"),
        ("base._layers.2._layers.4.weight", "backbone.blocks.0.project.conv.weight"),
        ("base._layers.3._layers.4.weight", "backbone.blocks.1.depthwise.conv.weight"),
        ("base._layers.6._layers.8.running_var", "backbone.blocks.4.project.bn.running_var"),
        ("base.bn0.running_mean", "bn0.running_mean"),
        ("base.pn_block.bias", "conv.bias"),
        ("projection.linear2.weight", "projection.linear2.weight"),
    ]:
        assert torch.equal(converted[our_key], ref[f"module.{ref_key}"]), (ref_key, our_key)
    path = tmp_path / "student_model.ckpt"
    torch.save({k.removeprefix("module."): v for k, v in ref.items()}, path)
    loaded = load_reference_checkpoint(path, TINY.name, TINY_AUDIO, embed_width=32, dim=16)
    assert torch.equal(loaded.backbone.blocks[1].expand.conv.weight, ref["module.base._layers.3._layers.0.weight"])
    with pytest.raises(CheckpointError, match="does not fit"):
        load_reference_checkpoint(path, TINY.replace(alpha=0.5).name, TINY_AUDIO, embed_width=32, dim=16)
