"""DNN: embeddings of all fields, concatenated, through an MLP (the deep part of
Wide & Deep / DeepFM on its own; Covington et al., 2016 style)."""

from fuxi_like.layers import MLPBlock
from fuxi_like.models import BaseModel, register_model


@register_model
class DNN(BaseModel):
    def __init__(self, feature_map, model_id="DNN", hidden_units=(64, 64, 64), hidden_activations="relu",
                 net_dropout=0.0, batch_norm=False, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        self.embedding = self.make_embedding()
        self.mlp = MLPBlock(hidden_units, hidden_activations, output_dim=1, dropout_rates=net_dropout,
                            batch_norm=batch_norm, kernel_regularizer=self.net_regularizer)

    def call(self, inputs, training=None):
        emb = self.embedding(inputs)
        return self.output_activation(self.mlp.call_fields(emb, training=training))  # = mlp(flatten(emb))
