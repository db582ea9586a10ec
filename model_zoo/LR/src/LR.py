"""LR: logistic regression over one weight per feature value (first-order only)."""

from fuxi_like.layers import LogisticRegression
from fuxi_like.models import BaseModel, register_model


@register_model
class LR(BaseModel):
    def __init__(self, feature_map, model_id="LR", **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        self.lr = LogisticRegression(feature_map, regularizer=self.embedding_regularizer)

    def call(self, inputs, training=None):
        return self.output_activation(self.lr(inputs))
