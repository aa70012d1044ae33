"""DAMSM matching losses (AttnGAN paper Eq. 7–13, as the reference ``code/miscc/losses.py`` computes them).

Words loss, for image j (regions v_r, r = 1..N) and caption i (words e_k, k = 1..L_i):

    s_{r,k} = v_rᵀ·e_k
    ŝ_{r,k} = softmax_k(s_{r,k})                   (over the caption's words; Eq. 8)
    α_{r,k} = softmax_r(γ1·ŝ_{r,k})                (over regions; Eq. 9)
    c_k = Σ_r α_{r,k}·v_r,   R_k = cos(c_k, e_k)
    S(j, i) = log Σ_k exp(γ2·R_k)                   (the reference omits the paper's 1/γ2 exponent)
    logits = γ3·S (rows images, columns captions); same-class off-diagonal pairs → −∞ when class ids are given
    w0 = CE(logits, diag), w1 = CE(logitsᵀ, diag)

Sentence loss: logits = γ3·cos(code_j, sent_i), same masking, s0/s1 likewise.

Vectorised over every (image, caption) pair at once instead of the reference's per-caption loop; the numbers
agree with the loop to float rounding (tests/test_nn_damsm_loss.py).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-8  # the reference clamps the product of the norms at this value


def same_class_mask(class_ids: Optional[Tensor], batch: int, device: torch.device) -> Optional[Tensor]:
    """B×B bool, True where samples i ≠ j share a class (those pairs are not negatives)."""
    if class_ids is None:
        return None
    ids = torch.as_tensor(class_ids, device=device).reshape(-1)
    mask = ids[:, None] == ids[None, :]
    mask.fill_diagonal_(False)
    return mask


def _bidirectional_ce(logits: Tensor, class_ids: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    batch = logits.shape[0]
    mask = same_class_mask(class_ids, batch, logits.device)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    labels = torch.arange(batch, device=logits.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def word_relevance(regions: Tensor, words: Tensor, lengths: Tensor, gamma1: float) -> tuple[Tensor, Tensor]:
    """R_k = cos(c_k, e_k) for every image j, caption i and word k, and the attention α.

    regions: B_img×D×h×w, words: B_cap×D×T, lengths: B_cap.
    Returns (relevance B_img×B_cap×T, attn B_img×B_cap×T×N); padded words have zero attention and relevance.

    The context vectors c_k are never formed: c_k·e_k = Σ_r α_{r,k}·s_{r,k} reuses the scores, and
    |c_k|² = α_kᵀ·(VᵀV)·α_k uses the regions' Gram matrix when there are fewer regions than channels (N < D,
    e.g. the small CNN's 8×8 regions), else |c_k| from c_k itself. Same mathematics, fewer operations.
    """
    n_img, dim = regions.shape[:2]
    flat = regions.reshape(n_img, dim, -1)  # v: J×D×N
    n_regions, n_words = flat.shape[2], words.shape[2]
    pad = torch.arange(n_words, device=words.device)[None, :] >= lengths.to(words.device)[:, None]  # I×T
    scores = torch.einsum("jdn,idt->jint", flat, words)  # s: J×I×N×T
    attn = scores.masked_fill(pad[None, :, None, :], float("-inf")).softmax(dim=3)  # over words (Eq. 8)
    attn = (gamma1 * attn).softmax(dim=2)  # over regions (Eq. 9)
    attn = attn.masked_fill(pad[None, :, None, :], 0.0)
    dot = (attn * scores).sum(dim=2)  # c_k·e_k: J×I×T
    if n_regions < dim:
        gram = flat.transpose(1, 2) @ flat  # VᵀV: J×N×N
        context_sq = (attn * torch.einsum("jnm,jimt->jint", gram, attn)).sum(dim=2)
    else:
        context_sq = torch.einsum("jint,jdn->jidt", attn, flat).pow(2).sum(dim=2)
    context_norm = context_sq.masked_fill(pad[None], 1.0).clamp(min=0).sqrt()  # no 0-norm for padded words
    relevance = dot / (context_norm * words.norm(dim=1)[None]).clamp(min=EPS)
    return relevance.masked_fill(pad[None], 0.0), attn.transpose(2, 3)


def words_loss(regions: Tensor, words: Tensor, lengths: Tensor, class_ids: Optional[Tensor], gamma1: float,
               gamma2: float, gamma3: float) -> tuple[Tensor, Tensor, Tensor]:
    """(w0, w1, attn): the two directions of the words loss and each caption's attention over its own image,
    attn B×T×h×w (zero for padding words). Computed in fp32 (autocast off)."""
    with torch.autocast(regions.device.type, enabled=False):
        return _words_loss(regions.float(), words.float(), lengths, class_ids, gamma1, gamma2, gamma3)


def _words_loss(regions: Tensor, words: Tensor, lengths: Tensor, class_ids: Optional[Tensor], gamma1: float,
                gamma2: float, gamma3: float) -> tuple[Tensor, Tensor, Tensor]:
    batch, _, height, width = regions.shape  # padded word positions are masked (no host sync on lengths.max())
    relevance, attn = word_relevance(regions, words, lengths, gamma1)  # R: J×I×T
    pad = torch.arange(words.shape[2], device=words.device)[None, :] >= lengths.to(words.device)[:, None]
    similarity = torch.logsumexp((gamma2 * relevance).masked_fill(pad[None], float("-inf")), dim=2)  # S(j, i)
    w0, w1 = _bidirectional_ce(gamma3 * similarity, class_ids)
    own = torch.arange(batch, device=regions.device)
    return w0, w1, attn[own, own].reshape(batch, -1, height, width)


def sent_loss(code: Tensor, sent: Tensor, class_ids: Optional[Tensor], gamma3: float) -> tuple[Tensor, Tensor]:
    """(s0, s1): the two directions of the sentence loss (logits = γ3·cos(code_j, sent_i)). Computed in fp32
    (autocast off)."""
    with torch.autocast(code.device.type, enabled=False):
        code, sent = code.float(), sent.float()
        norms = code.norm(dim=1)[:, None] * sent.norm(dim=1)[None, :]
        logits = gamma3 * (code @ sent.t()) / norms.clamp(min=EPS)
        return _bidirectional_ce(logits, class_ids)
