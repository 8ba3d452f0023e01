"""ComSL's adapter (seed 004): structure, 4x downsampling, lengths, padding invariance."""

import pytest
import torch

from espnet_mtl.modules.comsl_adapter import ComSLAdapter


def test_structure_and_parameter_count():
    a = ComSLAdapter(8, 6)
    # FFN 8 -> 32 -> 8, LN 8, Conv1d 8 -> 12 (k3), FFN 6 -> 24 -> 6, LN 6, Conv1d 6 -> 12 (k3)
    expect = ((8 * 32 + 32) + (32 * 8 + 8) + 2 * 8 + (8 * 12 * 3 + 12)
              + (6 * 24 + 24) + (24 * 6 + 6) + 2 * 6 + (6 * 12 * 3 + 12))
    assert sum(p.numel() for p in a.parameters()) == expect


@pytest.mark.parametrize("length,expect", [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (8, 2),
                                           (9, 3), (100, 25), (101, 26)])
def test_four_times_shorter(length, expect):
    a = ComSLAdapter(8, 6).eval()
    y, lens = a(torch.randn(1, length, 8), torch.tensor([length]))
    assert y.shape == (1, expect, 6) and lens.tolist() == [expect]


def test_padding_changes_nothing():
    torch.manual_seed(0)
    a = ComSLAdapter(8, 6).eval()
    x = torch.randn(3, 37, 8)
    lens = torch.tensor([37, 19, 7])
    x[1, 19:] = 50.0  # garbage in the padding
    x[2, 7:] = -50.0
    with torch.no_grad():
        y, out_lens = a(x, lens)
        for i, n in enumerate(lens.tolist()):
            alone, alone_lens = a(x[i:i + 1, :n], lens[i:i + 1])
            assert int(out_lens[i]) == int(alone_lens) == alone.size(1)
            torch.testing.assert_close(y[i, : alone.size(1)], alone[0], atol=1e-5, rtol=1e-4)
            assert y[i, alone.size(1):].abs().sum() == 0
    # the test has teeth: without masking, the garbage would reach the last valid frame
    # (odd length 19: output frame 9 reads input frames 17-19, and 19 is padding)
    with torch.no_grad():
        unmasked = torch.nn.functional.glu(a.down1.conv(a.pre(x).transpose(1, 2)), dim=1)
        clean = torch.nn.functional.glu(a.down1.conv(a.pre(x[1:2, :19]).transpose(1, 2)), dim=1)
    assert not torch.allclose(unmasked[1, :, 9], clean[0, :, 9], atol=1e-3)
