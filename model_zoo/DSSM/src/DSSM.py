"""DSSM two-tower model (Huang et al., CIKM'13, as used for retrieval).

Query tower: an MLP over the concatenated query-field embeddings (user id, mean-pooled
history, any profile fields). Item tower: a separate MLP over the item-field embeddings.
Cosine similarity with a temperature, trained with an in-batch softmax with logQ
correction and accidental-hit removal by default.
"""

from fuxi_like.layers import FeatureEmbedding, MLPBlock
from fuxi_like.models import RetrievalModel, register_model


@register_model
class DSSM(RetrievalModel):
    def __init__(self, feature_map, model_id="DSSM", query_fields=None, query_hidden_units=(128, 64),
                 item_hidden_units=(128, 64), hidden_activations="relu", net_dropout=0.0, softmax="inbatch",
                 similarity="cosine", temperature=0.05, **kwargs):
        super().__init__(feature_map, model_id=model_id, softmax=softmax, similarity=similarity,
                         temperature=temperature, **kwargs)
        skip = {self.item_field, self.negatives_field}
        self.query_fields = list(query_fields or [n for n in feature_map.names() if n not in skip])
        for n in self.query_fields:
            feature_map.require(n, where="DSSM.query_fields")
        self.embedding = self.make_embedding(features=[self.item_field] + self.query_fields)
        self.embedding.build()
        self.query_tower = MLPBlock(query_hidden_units[:-1], hidden_activations, output_dim=query_hidden_units[-1],
                                    dropout_rates=net_dropout, kernel_regularizer=self.net_regularizer)
        self.item_tower = MLPBlock(item_hidden_units[:-1], hidden_activations, output_dim=item_hidden_units[-1],
                                   dropout_rates=net_dropout, kernel_regularizer=self.net_regularizer)

    def encode_query(self, inputs, training=None):
        emb = self.embedding(inputs)
        return self.query_tower(FeatureEmbedding.flatten(emb, self.query_fields), training=training)

    def encode_items(self, item_ids, training=None):
        return self.item_tower(self.embedding.lookup(self.item_field, item_ids), training=training)
