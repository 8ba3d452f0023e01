"""Utterance-batched beam search against ESPnet's one-utterance search."""

import numpy as np
import pytest
import torch

from espnet_mtl.inference.batch_beam_search import UtteranceBatchBeamSearch
from espnet_mtl.inference.batch_encode import batch_encodable, encode_batch, encode_each
from espnet_mtl.inference.decoder_steps import memory_projected_once
from espnet_mtl.inference.speech2text import Speech2Text
from espnet_mtl.tasks.st import MTLSTTask

TOKENS = ["<blank>", "<unk>", *"abcdefghij", "<sos/eos>"]


ENCODERS = {
    "transformer": ["--encoder", "transformer"],
    # ESPnet's conformer with its convolution module and conv2d subsampling: the two
    # parts of the encoder that see padding in a batch
    "conformer": ["--encoder", "conformer", "--encoder_conf", "use_cnn_module=true",
                  "--encoder_conf", "cnn_module_kernel=5", "--encoder_conf", "macaron_style=true",
                  "--encoder_conf", "pos_enc_layer_type=rel_pos", "--encoder_conf",
                  "selfattention_layer_type=rel_selfattn", "--encoder_conf", "rel_pos_type=latest"],
}


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def model_files(tmp_path_factory, request):
    d = tmp_path_factory.mktemp(f"bbs_{request.param}")
    (d / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    MTLSTTask.main(cmd=[
        "--dry_run", "true", "--output_dir", str(d / "exp"), "--token_list", str(d / "tokens.txt"),
        "--src_token_list", str(d / "tokens.txt"), "--token_type", "char",
        "--src_token_type", "char",
        "--frontend_conf", "n_fft=128", "--frontend_conf", "hop_length=64",
        "--frontend_conf", "n_mels=8", "--normalize", "utterance_mvn",
        *ENCODERS[request.param], "--encoder_conf", "output_size=16",
        "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=32",
        "--encoder_conf", "num_blocks=1", "--decoder", "transformer",
        "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=32",
        "--decoder_conf", "num_blocks=2"])
    model, _ = MTLSTTask.build_model_from_file(d / "exp/config.yaml", None, "cpu")
    torch.manual_seed(0)
    with torch.no_grad():  # a sharper random model: hypotheses of varied lengths
        for p in [*model.decoder.parameters(), *model.encoder.parameters()]:
            p.mul_(4.0)
    torch.save(model.state_dict(), d / "exp/model.pth")
    return d / "exp/config.yaml", d / "exp/model.pth"


def _waves(seed, lengths):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in lengths]


def test_a_batch_encodes_each_utterance_as_alone(model_files):
    config, model_file = model_files
    model, _ = MTLSTTask.build_model_from_file(config, model_file, "cpu")
    model.eval()
    assert batch_encodable(model)
    waves = _waves(2, (3000, 1200, 2400, 700, 1900))
    alone, alone_lens = encode_each(model, waves)
    batch, batch_lens = encode_batch(model, waves)
    assert batch_lens.tolist() == alone_lens.tolist()
    for i, n in enumerate(alone_lens.tolist()):
        # values of ~10: float32 summation order differs by ~1e-5; padding by ~1
        torch.testing.assert_close(batch[i, :n], alone[i, :n], atol=2e-4, rtol=1e-5)
    # ESPnet's encoder on the padded batch does not (the frontend's reflection at the
    # end, the subsampling's mask and the conformer's convolution see padding)
    speech = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], True)
    with torch.no_grad():
        plain, plain_lens = model.encode(speech, torch.tensor([len(w) for w in waves]))
    assert plain_lens.tolist() != alone_lens.tolist() or not all(
        torch.allclose(plain[i, :n], alone[i, :n], atol=2e-4)
        for i, n in enumerate(alone_lens.tolist()))
    assert model.frontend.__class__.__name__ == "DefaultFrontend"  # put back
    batch_again, _ = encode_batch(model, waves)  # no hook left behind: same result
    torch.testing.assert_close(batch_again, batch)


def test_memory_projections_computed_once_give_the_decoders_output(model_files):
    config, model_file = model_files
    model, _ = MTLSTTask.build_model_from_file(config, model_file, "cpu")
    model.eval()
    enc, enc_lens = encode_each(model, _waves(3, (2000, 900)))
    rows = torch.tensor([0, 0, 1, 0, 1])
    ys = torch.tensor([[12, 3, 4]] * 5)
    mask = (torch.arange(enc.size(1))[None, :] < enc_lens[:, None])[:, None, :]
    tgt_mask = torch.ones(1, 3, 3, dtype=torch.bool).tril()
    with torch.no_grad():
        expect, _ = model.decoder.forward_one_step(ys, tgt_mask, enc[rows], mask[rows])
        linears = [layer.src_attn.linear_k for layer in model.decoder.decoders]
        with memory_projected_once(model.decoder, enc) as memory_rows:
            memory_rows.set(rows)
            got, _ = model.decoder.forward_one_step(ys, tgt_mask, enc, mask[rows])
        torch.testing.assert_close(got, expect)
        assert [layer.src_attn.linear_k for layer in model.decoder.decoders] == linears
        with pytest.raises(RuntimeError, match="boom"):
            with memory_projected_once(model.decoder, enc):
                raise RuntimeError("boom")
        assert [layer.src_attn.linear_k for layer in model.decoder.decoders] == linears


@pytest.mark.parametrize("beam, penalty, normalize", [(1, 0.0, False), (4, 0.0, False),
                                                     (4, 0.5, False), (4, 0.0, True)])
def test_batched_equals_espnets_search_per_utterance(model_files, beam, penalty, normalize):
    config, model_file = model_files
    s2t = Speech2Text(st_train_config=config, st_model_file=model_file, beam_size=beam,
                      penalty=penalty, ctc_weight=0.0, lm_weight=0.0, nbest=2 if beam > 1 else 1,
                      normalize_length=normalize)
    waves = _waves(0, (3000, 1200, 2400, 700, 1900))
    expect = [[(h.yseq.tolist(), float(h.score)) for *_, h in s2t(w)] for w in waves]
    model = s2t.st_model
    enc, enc_lens = encode_batch(model, waves)  # what stage 12 runs
    search = UtteranceBatchBeamSearch(model.decoder, model.sos, model.eos, beam, penalty,
                                      nbest=2 if beam > 1 else 1, normalize_length=normalize)
    got = [[(h.yseq.tolist(), h.score) for h in hyps] for hyps in search(enc, enc_lens)]
    assert [[y for y, _ in hyps] for hyps in got] == [[y for y, _ in hyps] for hyps in expect]
    for g, e in zip(got, expect):
        assert [s for _, s in g] == pytest.approx([s for _, s in e], abs=1e-4)
    assert len({len(hyps[0][0]) for hyps in got}) > 1  # the test has varied lengths


def test_decoders_without_incremental_steps_are_refused():
    with pytest.raises(ValueError, match="--batch_size 1"):
        UtteranceBatchBeamSearch(object(), 1, 2, 4)


def test_cli_batch_size_gives_the_files_of_batch_size_1(model_files, tmp_path):
    import subprocess
    import sys

    import soundfile

    config, model_file = model_files
    rng = np.random.default_rng(1)
    lines = []
    for i, n in enumerate((2600, 900, 1800, 2200, 600)):
        path = tmp_path / f"u{i}.wav"
        soundfile.write(path, rng.standard_normal(n).astype(np.float32) * 0.5, 16000)
        lines.append(f"u{i} {path}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    outputs = {}
    for bs in (1, 3):
        out = tmp_path / f"out{bs}"
        r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.st_inference", "--batch_size",
                            str(bs), "--ngpu", "0", "--beam_size", "3", "--ctc_weight", "0",
                            "--lm_weight", "0", "--data_path_and_name_and_type",
                            f"{tmp_path}/wav.scp,speech,sound", "--st_train_config", str(config),
                            "--st_model_file", str(model_file), "--output_dir", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs[bs] = {f: (out / "1best_recog" / f).read_text()
                       for f in ("token", "token_int", "text", "score")}
    for f in ("token", "token_int", "text"):
        assert outputs[3][f] == outputs[1][f]
    # scores agree to float32 summation order (the file shows 4 decimals, which a
    # difference of 1e-6 can flip)
    def scores(text):
        return [float(line.split("(")[1].rstrip(")")) for line in text.splitlines()]
    assert scores(outputs[3]["score"]) == pytest.approx(scores(outputs[1]["score"]), abs=2e-4)
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.st_inference", "--batch_size", "2",
                        "--ctc_weight", "0.3", "--data_path_and_name_and_type",
                        f"{tmp_path}/wav.scp,speech,sound", "--st_train_config", str(config),
                        "--output_dir", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode != 0 and "CTC prefix scoring (--ctc_weight > 0)" in r.stderr
