"""The rehearsal preset's assets and orchestration: the paper preset's own code path at toy scale on CPU.

``models``: tiny random-init Hugging Face model directories shaped like Llama-3 and Gemma-2 (tokenizer,
chat template, stop ids); ``data``: preference pairs in the two released layouts (princeton-nlp parquet,
mk1111 alpaca-ranking JSON); ``judge_server``: a deterministic OpenAI-compatible stand-in judge on
127.0.0.1 (the paid judge cannot be called here); ``run``: build the assets, start the judge, run the
workflow with ``--config preset=rehearsal``, stop the judge.
"""
