"""Model surgery: what physically changes a model and rebuilds it on reload.

Slicing and factorising Linear layers (:mod:`.linear`); removing heads and neurons (:mod:`.units`) and whole
layers (:mod:`.layers`, which refuses to leave a layer without what it reads); WavLM attention that runs with a
subset of its heads (:mod:`.wavlm_attention`); top-k attention (:mod:`.hard_attention`); exits after each layer
(:mod:`.exits`); a time-reduction layer (:mod:`.time_reduction`, FitHuBERT's); attention-map reuse
(:mod:`.attention_reuse`, ARMHuBERT's) and an encoder without a feature projection (:mod:`.feature_projection`);
the attention functions top-k attention and map reuse register over a model's own (:mod:`.attention_functions`);
and the structure record that lets a saved variant be rebuilt with its shapes (:mod:`.structure`). Importing the
package registers every structure part.
"""

from compbench.surgery import (  # noqa: F401  (each registers its structure part)
    attention_reuse,
    exits,
    feature_projection,
    hard_attention,
    time_reduction,
)
