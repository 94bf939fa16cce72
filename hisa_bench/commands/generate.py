"""`hisa-bench generate`: write a seeded synthetic indexer dump (same format as captured ones)."""
from __future__ import annotations

import sys

import typer

from ..inputs.synthetic_config import SyntheticConfig

_D = SyntheticConfig()


def register(app: typer.Typer):
    @app.command("generate")
    def generate(
        out: str = typer.Option(..., "--out", help="Dump file to write (torch.save, dump-format v1)."),
        seed: int = typer.Option(_D.seed, "--seed", help="Random seed: the same seed and knobs give the same file."),
        layers: int = typer.Option(_D.layers, "--layers", help="Layers in the dump."),
        keys: int = typer.Option(_D.keys, "--keys", help="Keys T (context length)."),
        queries: int = typer.Option(_D.queries, "--queries", help="Queries Nq per layer (distinct positions)."),
        heads: int = typer.Option(_D.heads, "--heads", help="Indexer heads H."),
        dim: int = typer.Option(_D.dim, "--dim", help="Head dim D."),
        dtype: str = typer.Option(_D.dtype, "--dtype", help="q and k dtype: bfloat16, float16 or float32."),
        weights: str = typer.Option(_D.weights, "--weights",
                                    help="Head weights w: uniform (1/H, like model proxies) or signed "
                                         "(mostly positive, some negative, like a trained indexer)."),
        sinks: int = typer.Option(_D.sinks, "--sinks", help="Attention-sink keys at the start of the context."),
        sink_strength: float = typer.Option(_D.sink_strength, "--sink-strength",
                                            help="Norm of the sink direction in sink keys (queries carry it too)."),
        recency_strength: float = typer.Option(_D.recency_strength, "--recency-strength",
                                               help="Weight of the position code: recent keys score higher."),
        recency_window: int = typer.Option(_D.recency_window, "--recency-window",
                                           help="Shortest period (keys) of the position code: the recency width."),
        recency_freqs: int = typer.Option(_D.recency_freqs, "--recency-freqs",
                                          help="Sine/cosine pairs in the position code (0 turns recency off)."),
        topics: int = typer.Option(_D.topics, "--topics",
                                   help="Topic spans of random lengths, edges never on a 16-key boundary."),
        topic_strength: float = typer.Option(_D.topic_strength, "--topic-strength",
                                             help="Norm of the topic direction added to every key of a span."),
        topic_jump: float = typer.Option(_D.topic_jump, "--topic-jump",
                                         help="Chance that a query head looks for an earlier topic, not its own."),
        needles: int = typer.Option(_D.needles, "--needles", help="Planted needles: single strongly aligned keys."),
        needle_strength: float = typer.Option(_D.needle_strength, "--needle-strength",
                                              help="Norm of a needle's direction in its key and in the queries."),
        needle_queries: float = typer.Option(_D.needle_queries, "--needle-queries",
                                             help="Share of the later queries that look for each needle."),
        adversarial: int = typer.Option(_D.adversarial, "--adversarial",
                                        help="Adversarial needles: the rest of their block is anti-aligned, so "
                                             "the block mean along the needle is zero."),
        adversarial_block: int = typer.Option(_D.adversarial_block, "--adversarial-block",
                                              help="Aligned window (keys) that cancels an adversarial needle."),
        norm_sigma: float = typer.Option(_D.norm_sigma, "--norm-sigma",
                                         help="Key norms scale by exp(sigma * N(0,1)): heavier tail when larger."),
        key_noise: float = typer.Option(_D.key_noise, "--key-noise", help="Norm of the Gaussian noise in keys."),
        query_noise: float = typer.Option(_D.query_noise, "--query-noise", help="Norm of the Gaussian noise in queries."),
        fmt: str = typer.Option("text", "--format", help="text, or json (stdout then holds the file written and "
                                "its meta)."),
        query_tail: float = typer.Option(_D.query_tail, "--query-tail",
                                         help="Query positions have density ((s+1)/T)^tail: 0 uniform, larger = "
                                              "more queries near the end."),
    ):
        """Write a seeded synthetic dump: sinks, recency, topics, needles, adversarial blocks, heavy tails.

        docs/fidelity.md describes every knob."""
        from ..errors import check_format, path_option
        from ..inputs.dump import save_dump
        from ..inputs.synthetic import generate as make

        check_format(fmt)
        path_option(out, "--out")
        cfg = SyntheticConfig(
            seed=seed, layers=layers, keys=keys, queries=queries, heads=heads, dim=dim, dtype=dtype,
            weights=weights, sinks=sinks, sink_strength=sink_strength, recency_strength=recency_strength,
            recency_window=recency_window, recency_freqs=recency_freqs, topics=topics,
            topic_strength=topic_strength, topic_jump=topic_jump, needles=needles,
            needle_strength=needle_strength, needle_queries=needle_queries, adversarial=adversarial,
            adversarial_block=adversarial_block, norm_sigma=norm_sigma, key_noise=key_noise,
            query_noise=query_noise, query_tail=query_tail)
        layer_list, meta = make(cfg)
        path = save_dump(out, layer_list, meta)
        if fmt == "json":
            import json

            print(json.dumps({"dump": str(path), "bytes": path.stat().st_size, "meta": meta}, indent=1, default=str))
        print(f"wrote {path}: {layers} layer(s), {keys} keys, {queries} queries, H={heads}, D={dim}, "
              f"{dtype}, seed {seed}", file=sys.stderr)
