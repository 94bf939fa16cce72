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
    assert topk.topk_config(1024, 64, 64)["num_warps"] == 4      # HISA's block top-m in decode
    assert topk.topk_config(2048, 64, 64)["num_warps"] == 8
    # the switch sits at two rows per SM
    assert topk.topk_config(8192, 2048, 264)["num_warps"] == 8
    assert topk.topk_config(8192, 2048, 265)["num_warps"] == 4
    # CAP (and so the scratch) never depends on the row count
    for w in (16, 1000, 8192, 9000, 131072):
        assert len({topk.topk_config(w, 2048, r)["CAP"] for r in (1, 64, 1024, 10**6)}) == 1


def test_decode_block_scores_split_into_short_pieces(monkeypatch):
    # 64 decode queries over 1024 pooled keys each (HISA's block stage at 128K): four 256-key pieces
    # per query, not one program per query
    import torch
    import kernels.flat_scores as fs

    monkeypatch.setattr(fs, "INTERPRETED", False)
    ks = torch.arange(64, dtype=torch.int32) * 1024
    plan = fs.scores_plan(ks, ks + 1024, 64)
    assert plan["split_n"] == 256 and plan["grid"] == (64, 4)
    # a 1024-query chunk of 128K keys: split by the machine-filling bound (3 pieces), as before
    ks = torch.zeros(1024, dtype=torch.int32)
    plan = fs.scores_plan(ks, 131072 - 1023 + torch.arange(1024, dtype=torch.int32), 64)
    assert plan["grid"][1] == 3
    # the same chunk's block stage (1024 pooled keys, 256 programs of 4 queries): not split, since
    # 3 pieces each reloading the query tile measured slower
    plan = fs.scores_plan(ks, 1024 - 7 + torch.arange(1024, dtype=torch.int32) // 128, 64)
    assert plan["grid"] == (256, 1)


def test_block_scores_take_smaller_programs_except_in_decode(monkeypatch):
    import torch
    import kernels.flat_scores as fs

    monkeypatch.setattr(fs, "INTERPRETED", False)
    # a 1024-query chunk's block stage at 128K (1024 pooled keys): 128 query-head rows, 4 warps
    ks = torch.zeros(1024, dtype=torch.int32)
    bke = 1024 - 7 + torch.arange(1024, dtype=torch.int32) // 128
    plan = fs.scores_plan(ks, bke, 64, pooled=True)
    assert (plan["cfg"]["BLOCK_Q"], plan["cfg"]["num_warps"], plan["grid"]) == (2, 4, (512, 1))
    assert fs.scores_plan(ks, bke, 64)["cfg"]["num_warps"] == 8            # flat keeps its rule
    assert fs.scores_plan(ks, bke, 128, pooled=True)["cfg"]["BLOCK_Q"] == 1
    # few heads: the flat rule stands (more queries per program would spill at 4 warps)
    assert fs.scores_plan(ks, bke, 4, pooled=True)["cfg"] == fs.scores_plan(ks, bke, 4)["cfg"]
    # a config given wins
    assert fs.scores_plan(ks, bke, 64, config=dict(num_warps=8), pooled=True)["cfg"]["num_warps"] == 8
    # decode (queries that share no keys): one query per program with the flat rule's warps
    dks = torch.arange(64, dtype=torch.int32) * 1024
    plan = fs.scores_plan(dks, dks + 1024, 64, pooled=True)
    assert (plan["cfg"]["BLOCK_Q"], plan["cfg"]["num_warps"]) == (1, 8) and plan["grid"] == (64, 4)
    # small batches the decode rule lets through keep the flat rule too: one sequence, and two of
    # equal length (one program covers both, as before)
    for n in (1, 2):
        dks = torch.arange(n, dtype=torch.int32) * 1024
        assert fs.scores_plan(dks, dks + 1024, 64, pooled=True)["cfg"] == fs.scores_plan(dks, dks + 1024, 64)["cfg"]
    # a chunk too small for the flat rule's programs to fill the SMs keeps it (524 queries: 131
    # programs of 4 queries at 64 heads; 525 make 132 and take the pooled launch)
    for T, pooled_launch in ((524, False), (525, True)):
        cks, cke = torch.zeros(T, dtype=torch.int32), 1017 + torch.arange(T, dtype=torch.int32) // 128
        got = fs.scores_plan(cks, cke, 64, pooled=True)["cfg"]["num_warps"]
        assert got == (4 if pooled_launch else 8), T
    # the boundary in heads, with queries enough for 132 of the flat rule's 16-query programs:
    # 16 heads take it, 8 do not
    cks, cke = torch.zeros(4096, dtype=torch.int32), 1017 + torch.arange(4096, dtype=torch.int32) // 512
    assert fs.scores_plan(cks, cke, 16, pooled=True)["cfg"]["num_warps"] == 4
    assert fs.scores_plan(cks, cke, 8, pooled=True)["cfg"] == fs.scores_plan(cks, cke, 8)["cfg"]
    # a BLOCK_Q given leaves the launch to the config (and the flat rule's warps)
    got = fs.scores_plan(ks, bke, 64, config=dict(BLOCK_Q=2), pooled=True)["cfg"]
    assert (got["BLOCK_Q"], got["num_warps"]) == (2, 8)


def test_gather_programs_for_few_queries(monkeypatch):
    import kernels.gather_scores as gs

    monkeypatch.setattr(gs, "INTERPRETED", False)
    assert gs.gather_config(64, 64)["BLOCKS_PER_PROG"] == 8      # decode batch of 64: about 4 per SM
    assert gs.gather_config(1, 64)["BLOCKS_PER_PROG"] == 4
    assert gs.gather_config(1024, 64)["BLOCKS_PER_PROG"] == 64   # a chunk: one program per query


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
