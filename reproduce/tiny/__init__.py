"""The tiny preset's building blocks: a checkable task, an offline tokenizer, a tiny Llama, SFT."""
