"""Launch-config rules that the GPU measurements chose (docs/performance.md), checked as rules: the
interpreter ignores them, so without these a changed rule would only show as a slower GPU run."""
import pytest

import kernels.topk as topk
from kernels.indexers import pruning_group


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setattr(topk, "INTERPRETED", False)
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
    assert pruning_group(131072, 2048) == 16
    assert pruning_group(65536, 2048) == 8
    assert pruning_group(32768, 2048) == 4
    assert pruning_group(16384, 2048) == 2
    assert pruning_group(16383, 2048) == 0       # too few groups for a useful bound: plain top-k
    assert pruning_group(8192, 2048) == 0
    assert pruning_group(1 << 21, 2048) == 64    # at most PRUNE_MAX_GROUP
    for w in (16384, 50000, 131072, 1 << 20):
        g = pruning_group(w, 2048)
        assert g & (g - 1) == 0 and (w // g >= 4 * 2048 or g == 64)
    # doubled while rows would have more groups than the kernel holds; none fits: no pruning
    assert pruning_group(131072, 2048, fits=lambda g: g >= 32) == 32
    assert pruning_group(131072, 2048, fits=lambda g: False) == 0
