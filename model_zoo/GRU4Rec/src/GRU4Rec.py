"""GRU4Rec (Hidasi et al., ICLR'16) as a query tower: a GRU over the behaviour history.

The query is the (projected) GRU state after the most recent item; items are the
item-id embeddings shared with the history. Trained like SASRec here (a next-item
softmax at every position, `sequence_loss: true`), not with the paper's session-parallel
mini-batches and TOP1/BPR losses (see README). The encoder is the core's
`fuxi_like.layers.GRU4RecEncoder`.
"""

from fuxi_like.layers import FeatureEmbedding, GRU4RecEncoder, last_position
from fuxi_like.models import RetrievalModel, register_model


@register_model
class GRU4Rec(RetrievalModel):
    def __init__(self, feature_map, model_id="GRU4Rec", hidden_units=64, num_layers=1, gru_dropout=0.2,
                 sequence_loss=True, softmax="sampled", **kwargs):
        super().__init__(feature_map, model_id=model_id, sequence_loss=sequence_loss, softmax=softmax, **kwargs)
        self.embedding = self.make_embedding(features=[self.item_field, self.history_field])
        self.embedding.build()
        self.encoder = GRU4RecEncoder(hidden_units, num_layers=num_layers, dropout=gru_dropout,
                                      output_dim=self.embedding.dim(self.item_field))

    def encode_query_sequence(self, inputs, training=None):
        ids = inputs[self.history_field]
        return self.encoder(self.embedding.lookup(self.item_field, ids), FeatureEmbedding.sequence_mask(ids),
                            training=training)

    def encode_query(self, inputs, training=None):
        return last_position(self.encode_query_sequence(inputs, training=training))

    def encode_items(self, item_ids, training=None):
        return self.embedding.lookup(self.item_field, item_ids)
