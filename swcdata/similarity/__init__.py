"""How alike two records are: the code-aware token stream (`tokens`), MinHash signatures and LSH
(`minhash`), and function-level code matching (`codematch`). Used by dedup, audit and split."""
