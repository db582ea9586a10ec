"""DeepFM (Guo et al., IJCAI 2017): y = sigmoid(LR + FM + DNN) over shared embeddings."""

from fuxi_like.layers import FactorizationMachine, LogisticRegression, MLPBlock
from fuxi_like.models import BaseModel, register_model


@register_model
class DeepFM(BaseModel):
    def __init__(self, feature_map, model_id="DeepFM", hidden_units=(64, 64, 64), hidden_activations="relu",
                 net_dropout=0.0, batch_norm=False, **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
        self.embedding = self.make_embedding()
        self.lr = LogisticRegression(feature_map, regularizer=self.embedding_regularizer)
        self.fm = FactorizationMachine()
        self.mlp = MLPBlock(hidden_units, hidden_activations, output_dim=1, dropout_rates=net_dropout,
                            batch_norm=batch_norm, kernel_regularizer=self.net_regularizer)

    def call(self, inputs, training=None):
        emb = self.embedding(inputs)
        # call_fields: the FM on stack(emb) and the MLP on flatten(emb), numeric fields by their factors
        logit = self.lr(inputs) + self.fm.call_fields(emb)
        logit = logit + self.mlp.call_fields(emb, training=training)
        return self.output_activation(logit)
