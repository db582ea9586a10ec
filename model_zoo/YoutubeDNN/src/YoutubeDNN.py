"""YouTubeDNN candidate generation (Covington et al., RecSys'16).

Query: the mean-pooled embeddings of the watch history (plus any other query fields,
e.g. the user id) through a ReLU MLP whose last layer has the item-embedding size;
items: the item-id embedding table, shared with the history, playing the role of the
softmax weights. Trained with a sampled softmax (popularity negatives, logQ-corrected)
by default, or in-batch / full softmax.
"""

from fuxi_like.layers import FeatureEmbedding, MLPBlock
from fuxi_like.models import RetrievalModel, register_model


@register_model
class YoutubeDNN(RetrievalModel):
    def __init__(self, feature_map, model_id="YoutubeDNN", query_fields=None, hidden_units=(128,),
                 hidden_activations="relu", net_dropout=0.0, softmax="sampled", **kwargs):
        super().__init__(feature_map, model_id=model_id, softmax=softmax, **kwargs)
        skip = {self.item_field, self.negatives_field}
        self.query_fields = list(query_fields or [n for n in feature_map.names() if n not in skip])
        for n in self.query_fields:
            feature_map.require(n, where="YoutubeDNN.query_fields")
        self.embedding = self.make_embedding(features=[self.item_field] + self.query_fields)
        self.embedding.build()
        self.mlp = MLPBlock(hidden_units, hidden_activations, output_dim=self.embedding.dim(self.item_field),
                            dropout_rates=net_dropout, kernel_regularizer=self.net_regularizer)

    def encode_query(self, inputs, training=None):
        emb = self.embedding(inputs)
        return self.mlp(FeatureEmbedding.flatten(emb, self.query_fields), training=training)

    def encode_items(self, item_ids, training=None):
        return self.embedding.lookup(self.item_field, item_ids)
