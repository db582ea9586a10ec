"""DCNv2 (Wang et al., WWW 2021): cross network x_{l+1} = x0 * (W x_l + b) + x_l
(keras_rs.layers.FeatureCross; `low_rank` sets the rank of W = U V^T) combined
with an MLP as `crossnet_only`, `stacked` (cross -> MLP), `parallel` (cross
output concatenated with an MLP on x0) or `stacked_parallel` (cross -> MLP,
concatenated with an MLP on x0), as in FuxiCTR."""

import keras
import keras_rs
from keras import ops

from fuxi_like.errors import ConfigError
from fuxi_like.layers import FeatureEmbedding, MLPBlock
from fuxi_like.models import BaseModel, register_model

STRUCTURES = ("crossnet_only", "stacked", "parallel", "stacked_parallel")


@register_model
class DCNv2(BaseModel):
    def __init__(self, feature_map, model_id="DCNv2", model_structure="parallel", num_cross_layers=3,
                 low_rank=None, stacked_dnn_hidden_units=(400, 400, 400),
                 parallel_dnn_hidden_units=(400, 400, 400), dnn_activations="relu", net_dropout=0.0,
                 batch_norm=False, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        if model_structure not in STRUCTURES:
            raise ConfigError(f"DCNv2: model_structure must be one of {STRUCTURES}, got {model_structure!r}")
        self.structure = model_structure
        self.embedding = self.make_embedding()
        self.cross = [keras_rs.layers.FeatureCross(projection_dim=low_rank,
                                                   kernel_regularizer=self.net_regularizer)
                      for _ in range(num_cross_layers)]
        mlp = dict(hidden_activations=dnn_activations, dropout_rates=net_dropout, batch_norm=batch_norm,
                   kernel_regularizer=self.net_regularizer)
        self.stacked = (MLPBlock(stacked_dnn_hidden_units, **mlp)
                        if model_structure in ("stacked", "stacked_parallel") else None)
        self.parallel = (MLPBlock(parallel_dnn_hidden_units, **mlp)
                         if model_structure in ("parallel", "stacked_parallel") else None)
        self.out = keras.layers.Dense(1)

    def call(self, inputs, training=None):
        emb = self.embedding(inputs)
        x0 = FeatureEmbedding.flatten(emb)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        if self.structure == "crossnet_only":
            h = x
        elif self.structure == "stacked":
            h = self.stacked(x, training=training)
        elif self.structure == "parallel":
            h = ops.concatenate([x, self.parallel.call_fields(emb, training=training)], axis=-1)  # = parallel(x0)
        else:
            h = ops.concatenate([self.stacked(x, training=training), self.parallel.call_fields(emb, training=training)],
                                axis=-1)
        return self.output_activation(self.out(h))
