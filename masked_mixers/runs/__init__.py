"""What a run is and where it lives: its config, the models it builds, its output folder, publishing it.

config.py       RunConfig = model (ModelSpec) + data + train sections, loaded from YAML
factory.py      a ModelSpec -> a Hugging Face model of its family
rundir.py       the output folder of a training run: its layout, loading it back, resuming it
manifest.py     what the toolkit wrote in a folder: the only entries it may ever replace or remove
checkpoints.py  which checkpoint of a run is intact (resume falls back past damaged ones)
layout.py       the padding side, owned once: where a model's inputs sit in a row
hub.py          `push`: a run folder as a Hugging Face model repository (model, tokenizer, code, card)
card.py         the model card `push` writes: title, licence, usage, what L means, data, budget, metrics
"""
