"""masked_mixers: train, evaluate, compare and serve masked mixer language models.

Importing the package registers model_type "masked_mixer" with transformers' Auto classes, so
`AutoModelForCausalLM.from_pretrained(dir)` loads a saved mixer.
"""

from .models import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel

__version__ = "0.1.0"
__all__ = ["MaskedMixerConfig", "MaskedMixerForCausalLM", "MaskedMixerModel", "__version__"]
