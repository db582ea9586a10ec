"""DIN (Zhou et al., KDD 2018): target attention over the user's behaviour sequence.

For each (target, sequence) pair the sequence embedding is replaced by the sum of
its items weighted by an attention MLP over [t, s, t-s, t*s] (padding masked).
A pair may group several fields, e.g. target [item_id, cate_id] with sequence
[hist_items, hist_cates]: their embeddings are concatenated. The pooled vectors
and all other fields go through an MLP (Dice activations by default).
"""

from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers import DINAttention, FeatureEmbedding, MLPBlock
from fuxi_like.models import BaseModel, register_model


def _pairs(target, sequence):
    t = target if isinstance(target, (list, tuple)) else [target]
    s = sequence if isinstance(sequence, (list, tuple)) else [sequence]
    if t and not isinstance(t[0], (list, tuple)) and len(t) != len(s):
        raise ConfigError(f"DIN: din_target_field {t} and din_sequence_field {s} must have the same length")
    if len(t) == len(s) and t and isinstance(t[0], (list, tuple)):
        return [(list(a), list(b)) for a, b in zip(t, s)]
    return [(t, s)]  # one pair, fields concatenated


@register_model
class DIN(BaseModel):
    def __init__(self, feature_map, model_id="DIN", din_target_field="item_id", din_sequence_field="hist_items",
                 attention_units=(64,), attention_hidden_activations="dice", din_use_softmax=False,
                 attention_dropout=0.0, dnn_hidden_units=(200, 80), dnn_activations="dice", net_dropout=0.0,
                 batch_norm=False, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        self.pairs = _pairs(din_target_field, din_sequence_field)
        for tgt, seq in self.pairs:
            if len(tgt) != len(seq):
                raise ConfigError(f"DIN: target {tgt} and sequence {seq} need the same number of fields")
            for f in tgt:
                feature_map.require(f, ("categorical",), "DIN din_target_field")
            for f in seq:
                feature_map.require(f, ("sequence",), "DIN din_sequence_field")
        self.embedding = self.make_embedding()
        self.attention = [DINAttention(attention_units, attention_hidden_activations, attention_dropout,
                                       din_use_softmax) for _ in self.pairs]
        self.mlp = MLPBlock(dnn_hidden_units, dnn_activations, output_dim=1, dropout_rates=net_dropout,
                            batch_norm=batch_norm, kernel_regularizer=self.net_regularizer)

    def call(self, inputs, training=None):
        emb = self.embedding(inputs, pool=False)
        seq_names = {f for _, seq in self.pairs for f in seq}
        for (tgt, seq), att in zip(self.pairs, self.attention):
            target = ops.concatenate([emb[f] for f in tgt], axis=-1)
            sequence = ops.concatenate([emb[f] for f in seq], axis=-1)
            mask = FeatureEmbedding.sequence_mask(inputs[seq[0]])
            pooled = att(target, sequence, mask, training=training)
            emb["__din_" + "_".join(seq)] = pooled
        feats = []
        for name, e in emb.items():
            if name in seq_names:
                continue
            if len(e.shape) == 3:  # a sequence outside the attention pairs: masked mean
                from fuxi_like.layers import masked_pool

                e = masked_pool(e, FeatureEmbedding.sequence_mask(inputs[name]))
            feats.append(e)
        return self.output_activation(self.mlp(ops.concatenate(feats, axis=-1), training=training))
