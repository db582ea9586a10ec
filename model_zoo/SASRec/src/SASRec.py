"""SASRec (Kang & McAuley, ICDM'18): causal self-attention over the behaviour history.

The query is the encoder output at the most recent position; items are the item-id
embeddings shared with the history (as in the paper). Trained with a next-item loss at
every position (`sequence_loss: true`) over sampled or full softmax; the paper's own
loss (one random negative per position with binary cross-entropy) is replaced by a
sampled softmax, the common stronger choice (see README). The encoder is the core's
`fuxi_like.layers.SASRecEncoder`, so other models can use it as their query tower.
"""

from fuxi_like.layers import FeatureEmbedding, SASRecEncoder, last_position
from fuxi_like.models import RetrievalModel, register_model


@register_model
class SASRec(RetrievalModel):
    def __init__(self, feature_map, model_id="SASRec", num_blocks=2, num_heads=1, attention_dropout=0.2,
                 ffn_dim=None, sequence_loss=True, softmax="sampled", **kwargs):
        super().__init__(feature_map, model_id=model_id, sequence_loss=sequence_loss, softmax=softmax, **kwargs)
        self.embedding = self.make_embedding(features=[self.item_field, self.history_field])
        self.embedding.build()
        self.encoder = SASRecEncoder(feature_map.features[self.history_field]["max_len"], num_blocks=num_blocks,
                                     num_heads=num_heads, dropout=attention_dropout, ffn_dim=ffn_dim)

    def encode_query_sequence(self, inputs, training=None):
        ids = inputs[self.history_field]
        return self.encoder(self.embedding.lookup(self.item_field, ids), FeatureEmbedding.sequence_mask(ids),
                            training=training)

    def encode_query(self, inputs, training=None):
        return last_position(self.encode_query_sequence(inputs, training=training))

    def encode_items(self, item_ids, training=None):
        return self.embedding.lookup(self.item_field, item_ids)
