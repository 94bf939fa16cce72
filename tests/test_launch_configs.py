"""Launch-config rules that the GPU measurements chose (docs/performance.md), checked as rules: the
interpreter ignores them, so without these a changed rule would only show as a slower GPU run."""
import pytest

import kernels.flat_scores as flat_scores
import kernels.topk as topk
from kernels.indexers import pruning_group


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setattr(topk, "INTERPRETED", False)
    monkeypatch.setattr(flat_scores, "INTERPRETED", False)
    monkeypatch.setattr(topk, "_sm_count", lambda device=None: 132)


def test_topk_launch_depends_on_row_count(compiled):
    # a chunk (1024 rows): small programs with capped registers; decode (64 rows): more warps per row
    assert topk.topk_config(131072, 2048, 1024) == dict(CAP=8192, TILE=1024, num_warps=4, maxnreg=128)
    assert topk.topk_config(131072, 2048, 64) == dict(CAP=8192, TILE=1024, num_warps=8)
    assert topk.topk_config(8192, 2048, 1024) == dict(CAP=8192, TILE=1024, num_warps=4, maxnreg=128)
    assert topk.topk_config(8192, 2048, 64) == dict(CAP=8192, TILE=1024, num_warps=8)
    assert topk.topk_config(1024, 64, 1024) == dict(CAP=1024, TILE=1024, num_warps=1)
    assert topk.topk_config(1024, 64, 64)["num_warps"] == 8
    # the switch sits at two rows per SM
    assert topk.topk_config(8192, 2048, 264)["num_warps"] == 8
    assert topk.topk_config(8192, 2048, 265)["num_warps"] == 4
    # CAP (and so the scratch) never depends on the row count
    for w in (16, 1000, 8192, 9000, 131072):
        assert len({topk.topk_config(w, 2048, r)["CAP"] for r in (1, 64, 1024, 10**6)}) == 1


def test_pruning_group_keeps_four_groups_per_k():
    assert pruning_group(131072, 2048, 64) == 16
    assert pruning_group(65536, 2048, 64) == 8
    assert pruning_group(32768, 2048, 64) == 4
    assert pruning_group(16384, 2048, 64) == 2
    assert pruning_group(16383, 2048, 64) == 0       # too few groups for a useful bound: plain top-k
    assert pruning_group(8192, 2048, 64) == 0
    assert pruning_group(1 << 20, 2048, 64) == 64    # never wider than a key tile
    assert pruning_group(1 << 20, 2048, 32) == 32
    for w in (16384, 50000, 131072, 1 << 20):
        g = pruning_group(w, 2048, 64)
        assert g & (g - 1) == 0 and (w // g >= 4 * 2048 or g == 64)
    # doubled while rows would have more groups than the kernel holds; none fits: no pruning
    assert pruning_group(131072, 2048, 64, fits=lambda g: g >= 32) == 32
    assert pruning_group(131072, 2048, 64, fits=lambda g: False) == 0


def test_group_maxima_launch_caps_registers_only_where_it_fits(compiled, monkeypatch):
    monkeypatch.setattr(flat_scores, "_CAP_FITS", True)
    cfg = dict(BLOCK_Q=4, BLOCK_N=64, num_warps=8, num_stages=5)
    assert flat_scores.grouped_config(cfg, True, 128, 64) == dict(cfg, maxnreg=128)
    assert "maxnreg" not in flat_scores.grouped_config(cfg, False, 128, 64)     # bf16: not measured
    assert "maxnreg" not in flat_scores.grouped_config(cfg, True, 256, 64)      # D 256 would spill
    assert "maxnreg" not in flat_scores.grouped_config(dict(cfg, BLOCK_Q=8), True, 128, 32)
    assert "maxnreg" not in cfg
    # 64 queries per program (H <= 4) spill with the group reduction: 32
    assert flat_scores.grouped_config(dict(cfg, BLOCK_Q=64), True, 128, 4)["BLOCK_Q"] == 32
    monkeypatch.setattr(flat_scores, "_CAP_FITS", False)                     # Triton 3.9's code spills
    assert "maxnreg" not in flat_scores.grouped_config(cfg, True, 128, 64)
