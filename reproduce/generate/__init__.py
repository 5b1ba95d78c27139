"""Generation: backends behind one interface (``hf``, ``vllm``, ``openai``) and the answer files they write."""
