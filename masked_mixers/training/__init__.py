"""Training on a maintained engine (the Hugging Face Trainer), and what it measures.

train.py       `train(RunConfig)`: data, model, Trainer, budgets, resume, the run folder's records
trainer.py     the Trainer with atomic checkpoints, a non-finite loss guard and training objectives
callbacks.py   metrics.jsonl, wall-clock and FLOPs budgets, CPU/GPU time
budget.py      analytic training FLOPs per step; a FLOPs budget as a step count
divergence.py  the one definition of a diverged run
evaluation.py  held-out loss, perplexity, bits per byte (and autoencoder metrics)
tasks.py       what a family is trained for (causal LM or autoencoding) and how it is reported
metrics.py     loss -> perplexity, bits per byte, token accuracy
memory.py      peak training memory, measured
"""
