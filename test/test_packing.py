"""What stage 14 packs: the files a config refers to, never the archive itself."""

import pytest
import yaml

from espnet_mtl.runner.packing import PackingError, citations, pack_experiment, referenced_paths


def test_referenced_paths_take_paths_not_tokens(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for d in ("data/tok", "exp/stats/train", "pretrained/mbart"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "data/tok/bpe.model").write_text("x")
    (tmp_path / "exp/stats/train/feats_stats.npz").write_text("x")
    config = {"token_list": [".", "a", "data", "<unk>"], "bpemodel": "data/tok/bpe.model",
              "src_bpemodel": "data/tok/missing.model",
              "normalize_conf": {"stats_file": "exp/stats/train/feats_stats.npz"},
              "model_conf": {"mbart": "pretrained/mbart", "src_lang": "en_XX"},
              "encoder_conf": {"output_size": 4, "dir": "."}, "output_dir": "exp/st_x"}
    assert referenced_paths(config) == ["data/tok/bpe.model", "exp/stats/train/feats_stats.npz",
                                        "pretrained/mbart"]


def test_loading_resolves_paths_and_leaves_tokens_alone(tmp_path):
    # A resolved token "." became the recipe directory: every hypothesis ending in "."
    # was detokenised with the recipe's path appended.
    from espnet_mtl.inference.pretrained import _resolved_config

    (tmp_path / "data/tok").mkdir(parents=True)
    (tmp_path / "data/tok/bpe.model").write_text("x")
    (tmp_path / "a").write_text("x")
    tokens = ["<blank>", ".", "a", "data", "<sos/eos>"]
    config = {"token_list": tokens, "bpemodel": "data/tok/bpe.model",
              "frontend_conf": {"n_fft": 512}, "model_conf": {"name": "a"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    resolved = yaml.safe_load(_resolved_config(tmp_path / "config.yaml", tmp_path).read_text())
    assert resolved == {**config, "bpemodel": str(tmp_path / "data/tok/bpe.model")}


def test_an_archive_never_contains_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "exp/st_x"
    exp.mkdir(parents=True)
    (exp / "m.pth").write_bytes(b"x")
    (exp / "config.yaml").write_text(yaml.safe_dump({"model_conf": {"d": "exp/st_x/"}}))
    with pytest.raises(PackingError, match="holds the output"):
        pack_experiment(exp, "m.pth", exp / "out.zip")
    assert not list(exp.glob("*.zip"))


def test_citations_follow_the_config():
    assert any("ComSL" in c for c in citations({"model": "comsl"}))
    mtl = citations({"model": "mtl_st", "strategy": "modo"})
    assert any("Regularization Horizon" in c for c in mtl) and any("Soups" in c for c in mtl)
    assert len(citations({})) == 1  # ESPnet-ST only
