"""Stage 13 scoring: our numbers are sacreBLEU's own."""

import json

import pytest
import sacrebleu

from espnet_mtl.inference.scoring import ScoringError, score_st, write_result, write_results_md

REFS = ["Der Hund sieht die Katze.", "Zwei alte Männer essen Brot.", "Ich mag das (Applaus) Haus!"]
HYPS = ["Der Hund sieht eine Katze.", "zwei alte Männer essen Brot", "Ich mag das Haus!"]


def _tables(tmp_path, hyps=HYPS, refs=REFS):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    # Written in a different key order than sorted, and hyp in reverse order.
    ref.write_text("".join(f"utt{i} {r}\n" for i, r in enumerate(refs)), encoding="utf-8")
    hyp.write_text("".join(f"utt{i} {h}\n" for i, h in reversed(list(enumerate(hyps)))),
                   encoding="utf-8")
    return hyp, ref


def test_scores_equal_sacrebleu_on_the_same_pairs(tmp_path):
    hyp, ref = _tables(tmp_path)
    r = score_st(hyp, ref, "de")
    assert r["bleu"] == round(sacrebleu.corpus_bleu(HYPS, [REFS]).score, 2)
    assert r["chrf"] == round(sacrebleu.corpus_chrf(HYPS, [REFS]).score, 2)
    assert r["ter"] == round(sacrebleu.corpus_ter(HYPS, [REFS]).score, 2)
    assert r["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert r["num_sentences"] == 3 and r["remove_tags"] is False
    # lc.rm: lowercase + no punctuation on both sides, so only 'eine'/'die' and the tag differ.
    assert r["bleu_lc_rm"] > r["bleu"]


def test_perfect_hypotheses_score_100(tmp_path):
    hyp, ref = _tables(tmp_path, hyps=REFS)
    r = score_st(hyp, ref, "de")
    assert r["bleu"] == 100.0 and r["ter"] == 0.0 and r["bleu_lc_rm"] == 100.0


def test_remove_tags_flag(tmp_path):
    hyp, ref = _tables(tmp_path)
    with_tags = score_st(hyp, ref, "de")
    without = score_st(hyp, ref, "de", remove_tags=True)
    assert without["remove_tags"] is True and without["bleu"] > with_tags["bleu"]


def test_zh_uses_its_tokenizer(tmp_path):
    hyp, ref = _tables(tmp_path, hyps=["我喜欢猫。"], refs=["我喜欢狗。"])
    r = score_st(hyp, ref, "zh")
    assert "tok:zh" in r["bleu_signature"]
    assert r["bleu"] == round(sacrebleu.corpus_bleu(["我喜欢猫。"], [["我喜欢狗。"]],
                                                    tokenize="zh").score, 2)


@pytest.mark.parametrize("lang, tok", [("zh-CN", "zh"), ("ja", "ja-mecab")])
def test_covost_zh_ja_targets_use_their_tokenizers(tmp_path, lang, tok):
    # CoVoST writes zh-CN; ja needs MeCab (installed through sacrebleu[ja]).
    hyps, refs = ["今日は良い天気です。"], ["今日は良い天気でした。"]
    hyp, ref = _tables(tmp_path, hyps=hyps, refs=refs)
    r = score_st(hyp, ref, lang)
    assert f"tok:{tok}" in r["bleu_signature"]
    assert r["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok).score, 2)
    assert r["bleu"] != round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)


def test_missing_hypothesis_is_an_error_naming_the_utterance(tmp_path):
    hyp, ref = _tables(tmp_path)
    hyp.write_text("utt0 Der Hund.\n", encoding="utf-8")
    with pytest.raises(ScoringError, match="no hypothesis for 2 of 3.*utt1"):
        score_st(hyp, ref, "de")


def test_result_json_and_results_md(tmp_path):
    hyp, ref = _tables(tmp_path)
    exp = tmp_path / "exp" / "st_demo"
    out = exp / "decode_st_model_valid" / "tst-COMMON.en-de" / "score_bleu"
    write_result(score_st(hyp, ref, "de"), out)
    data = json.loads((out / "result.json").read_text())
    assert set(data) >= {"bleu", "chrf", "ter", "bleu_signature", "bleu_lc_rm"}
    md = write_results_md(exp).read_text()
    assert f"| decode_st_model_valid | tst-COMMON.en-de | {data['bleu']} |" in md
    assert data["bleu_signature"] in md
    # ESPnet's environment header: versions and the code's commit
    import espnet
    import torch

    assert f"- espnet version: `espnet {espnet.__version__}`" in md
    assert f"- pytorch version: `pytorch {torch.__version__}`" in md
    assert "- espnet_mtl git hash: `" in md and "- date: `" in md
    # one table over every experiment of the recipe
    from espnet_mtl.bin import collect_results

    other = tmp_path / "exp" / "st_other" / "decode_b" / "test.en-de" / "score_bleu"
    write_result(score_st(hyp, ref, "de"), other)
    assert collect_results.main([str(tmp_path), "--out", str(tmp_path / "ALL.md")]) == 0
    table = (tmp_path / "ALL.md").read_text()
    assert f"| exp/st_demo | decode_st_model_valid | tst-COMMON.en-de | {data['bleu']} |" in table
    assert f"| exp/st_other | decode_b | test.en-de | {data['bleu']} |" in table
    assert collect_results.main([str(tmp_path / "nothing")]) == 1


def test_asr_path_wer_and_cer_by_hand(tmp_path):
    from espnet_mtl.inference.scoring import score_asr

    (tmp_path / "hyp").write_text("u1 a b c\nu2 hello world\n")
    (tmp_path / "ref").write_text("u1 a x c d\nu2 hello word\n")
    r = score_asr(tmp_path / "hyp", tmp_path / "ref")
    # words: u1 1 sub + 1 del of 4, u2 1 sub of 2 -> 3/6; chars: u1 2/4, u2 1 del of 9 -> 3/13
    assert r["wer"] == 50.0 and r["word_errors"] == 3 and r["ref_words"] == 6
    assert r["cer"] == round(100 * 3 / 13, 2)
    (tmp_path / "hyp").write_text("u1 a b c\n")
    with pytest.raises(ScoringError, match="no hypothesis for 1 of 2"):
        score_asr(tmp_path / "hyp", tmp_path / "ref")


# --------------------------------------------------------------------------- CLI


def _cli(hyp, ref, out, st_exp=None):
    from espnet_mtl.bin.score_st import main

    argv = ["--hyp", str(hyp), "--ref", str(ref), "--tgt_lang", "de", "--out_dir", str(out)]
    return main(argv + (["--st_exp", str(st_exp)] if st_exp else []))


@pytest.mark.parametrize("broken", ["hyp", "ref"])
def test_cli_invalid_utf8_is_one_line_naming_file_and_line(tmp_path, capsys, broken):
    files = dict(zip(("hyp", "ref"), _tables(tmp_path)))
    # "Männer" in Latin-1, as a hypothesis or reference file that was never re-encoded.
    files[broken].write_bytes(b"utt0 Der Hund.\nutt1 Zwei alte M\xe4nner.\nutt2 Haus.\n")
    assert _cli(files["hyp"], files["ref"], tmp_path / "score") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"score_st: error: {files[broken]}:2: not valid UTF-8 (byte 17")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_failed_rescoring_leaves_no_stale_result(tmp_path, capsys):
    exp = tmp_path / "exp" / "st_demo"
    decode = exp / "decode_st_model_valid" / "tst-COMMON.en-de"
    decode.mkdir(parents=True)
    hyp, ref = _tables(decode)
    hyp.rename(decode / "text")
    hyp = decode / "text"
    out = decode / "score_bleu"
    assert _cli(hyp, ref, out, exp) == 0
    row = "| decode_st_model_valid | tst-COMMON.en-de |"
    assert row in (exp / "RESULTS.md").read_text() and (out / "result.json").is_file()

    hyp.write_text("utt0 Der Hund.\n", encoding="utf-8")  # decoding lost two utterances
    assert _cli(hyp, ref, out, exp) == 1
    assert "no hypothesis for 2 of 3" in capsys.readouterr().err
    assert not (out / "result.json").exists() and not (out / "result.txt").exists()
    md = (exp / "RESULTS.md").read_text()
    assert row not in md
    assert "Not scored" in md and "decode_st_model_valid/tst-COMMON.en-de" in md
