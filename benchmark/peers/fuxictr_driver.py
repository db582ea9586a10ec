"""FuxiCTR side of the peer comparison (runs inside the FuxiCTR venv; PyTorch on CPU).

Uses FuxiCTR's public API only (FeatureProcessor, build_dataset, FeatureMap,
RankDataLoader, BaseModel and its layers). FuxiCTR's pip package does not ship its
model zoo, so DeepFM and DCNv2 are assembled here from its layers the way the
papers define them. Prints one `RESULT {json}` line.
"""

import json
import logging
import os
import sys
import time



def main(spec):
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.layers import CrossNetV2, FactorizationMachine, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel
    from fuxictr.pytorch.torch_utils import seed_everything

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(os.cpu_count())
    seed_everything(spec["seed"])
    data_root = spec["work_dir"] + "/fuxictr_data/"
    cols = []
    if spec["numeric"]:
        cols.append({"name": spec["numeric"], "active": True, "dtype": "float", "type": "numeric", "fill_na": 0})
    cols.append({"name": spec["categorical"], "active": True, "dtype": "str", "type": "categorical"})
    enc = FeatureProcessor(feature_cols=cols, label_col={"name": spec["label"], "dtype": "float"},
                           dataset_id=spec["dataset_id"], data_root=data_root)
    t0 = time.perf_counter()
    train, valid, test = build_dataset(enc, train_data=spec["paths"]["train"], valid_data=spec["paths"]["valid"],
                                       test_data=spec["paths"]["test"], data_format="csv",
                                       min_categr_count=spec["min_categr_count"])
    prep_s = time.perf_counter() - t0
    if spec.get("prep_only"):
        print("RESULT " + json.dumps({"prep_s": prep_s}), flush=True)
        return
    data_dir = os.path.join(data_root, spec["dataset_id"])
    fmap = FeatureMap(spec["dataset_id"], data_dir)
    hp = spec["hparams"]
    params = {"model_root": spec["work_dir"] + "/fuxictr_ckpt/", "verbose": 0, "metrics": ["logloss", "AUC"],
              "optimizer": "adam", "loss": "binary_crossentropy", "embedding_regularizer": 0,
              "net_regularizer": 0, "monitor": "AUC", "monitor_mode": "max", "early_stop_patience": 2,
              "embedding_dim": hp["embedding_dim"]}
    fmap.load(os.path.join(data_dir, "feature_map.json"), params)
    os.makedirs(os.path.join(params["model_root"], spec["dataset_id"]), exist_ok=True)

    class DeepFM(BaseModel):
        def __init__(self, feature_map, **kw):
            super().__init__(feature_map, model_id="DeepFM", gpu=-1, **kw)
            self.embedding_layer = FeatureEmbedding(feature_map, hp["embedding_dim"])
            self.fm = FactorizationMachine(feature_map)
            self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1,
                                 hidden_units=hp["hidden_units"], hidden_activations="ReLU")
            self.compile(kw["optimizer"], kw["loss"], hp["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            emb = self.embedding_layer(X)
            y = self.fm(X, emb) + self.mlp(emb.flatten(start_dim=1))
            return {"y_pred": self.output_activation(y)}

    class DCNv2(BaseModel):
        def __init__(self, feature_map, **kw):
            super().__init__(feature_map, model_id="DCNv2", gpu=-1, **kw)
            self.embedding_layer = FeatureEmbedding(feature_map, hp["embedding_dim"])
            d = feature_map.sum_emb_out_dim()
            self.cross = CrossNetV2(d, hp["num_cross_layers"])
            self.mlp = MLP_Block(input_dim=d, output_dim=None, hidden_units=hp["hidden_units"],
                                 hidden_activations="ReLU")
            self.fc = torch.nn.Linear(d + hp["hidden_units"][-1], 1)
            self.compile(kw["optimizer"], kw["loss"], hp["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            x0 = self.embedding_layer(X, flatten_emb=True)
            y = self.fc(torch.cat([self.cross(x0), self.mlp(x0)], dim=-1))
            return {"y_pred": self.output_activation(y)}

    model = {"DeepFM": DeepFM, "DCNv2": DCNv2}[spec["model"]](fmap, **params)
    if spec.get("numeric_init_std"):  # diagnosis only: numeric-field weights initialised like ours
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.in_features == 1:
                torch.nn.init.normal_(m.weight, std=spec["numeric_init_std"])
    step_times = []
    orig_step = model.train_step

    def timed_step(batch):
        out = orig_step(batch)
        step_times.append(time.perf_counter())
        return out

    model.train_step = timed_step
    train_gen, valid_gen = RankDataLoader(fmap, stage="train", train_data=train, valid_data=valid,
                                          batch_size=hp["batch_size"], shuffle=True, data_format="parquet")
    t1 = time.perf_counter()
    model.fit(train_gen, validation_data=valid_gen, epochs=spec["epochs"], max_gradient_norm=10.0)
    fit_s = time.perf_counter() - t1
    test_gen = RankDataLoader(fmap, stage="test", test_data=test, batch_size=hp["batch_size"],
                              shuffle=False, data_format="parquet")
    res = model.evaluate(test_gen)
    warm = spec["warmup_steps"]
    steady = (len(step_times) - 1 - warm) * hp["batch_size"] / (step_times[-1] - step_times[warm]) \
        if len(step_times) > warm + 2 else float("nan")
    print("RESULT " + json.dumps({"prep_s": prep_s, "fit_s": fit_s, "steps": len(step_times),
                                  "train_samples_per_s": steady, "test_AUC": float(res["AUC"]),
                                  "test_logloss": float(res["logloss"]),
                                  "params": int(sum(p.numel() for p in model.parameters()))}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
