"""The region bank: CAE-GAN's image regions F_R at generation time, when the caption's image does not exist.

Choice (stated in the plugin README): a **clustered prototype bank built from the training split only**.

* Every training image is encoded once by the frozen DAMSM image encoder: global code (B×D) and regions
  (B×D×h×w, average-pooled to P×P).
* Spherical k-means (k-means++ start, seeded) on the L2-normalised global codes gives K clusters. Entry k of
  the bank is the cluster's prototype: key_k = the normalised mean code of its members, regions_k = the mean of
  its members' pooled regions. No entry is any single image, so a training caption cannot fetch its own image
  (training and generation see F_R of the same kind).
* Retrieval (training and generation alike): cosine similarity between the caption's DAMSM sentence feature
  and every key (DAMSM trains sentence and image code to be cosine-aligned), the ``topk`` best entries mixed
  with softmax(γ·cos) weights: F_R = Σ_k w_k·regions_k.
* The keys, regions and valid-entry count are **buffers**, so the bank travels in every checkpoint of a module
  that holds it. Size: K·D·(P² + 1) floats (paper: 512·256·65·4 B ≈ 34 MB).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RegionBank(nn.Module):
    """K prototypes (key K×D, regions K×D×P×P) retrieved by sentence similarity."""

    keys: Tensor
    regions: Tensor
    count: Tensor

    def __init__(self, entries: int, dim: int, pool: int, topk: int = 4, gamma: float = 10.0):
        super().__init__()
        self.entries, self.dim, self.pool, self.topk, self.gamma = entries, dim, pool, topk, gamma
        self.register_buffer("keys", torch.zeros(entries, dim))
        self.register_buffer("regions", torch.zeros(entries, dim, pool, pool))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # valid entries; 0 = not built

    def valid(self) -> Tensor:
        """K bool: the filled entries (every entry while the bank is empty, so an unbuilt bank stays finite)."""
        n = torch.where(self.count > 0, self.count, torch.full_like(self.count, self.entries))
        return torch.arange(self.entries, device=self.count.device) < n

    def similarity(self, sent: Tensor) -> Tensor:
        """cos(sentence, key) for every entry, B×K, in fp32; entries past ``count`` get −inf."""
        with torch.autocast(device_type=sent.device.type, enabled=False):
            sim = F.normalize(sent.float(), dim=1, eps=1e-8) @ self.keys.float().t()
        return sim.masked_fill(~self.valid(), float("-inf"))

    def retrieve(self, sent: Tensor, return_weights: bool = False):
        """F_R for each caption, B×D×P×P in fp32 (plus the B×K mixing weights when asked). No host sync."""
        sim = self.similarity(sent)
        with torch.autocast(device_type=sent.device.type, enabled=False):
            top, idx = sim.topk(min(self.topk, self.entries), dim=1)
            w = torch.softmax(self.gamma * top, dim=1)  # B×k; an invalid (−inf) entry gets exactly 0
            regions = torch.einsum("bk,bkdhw->bdhw", w, self.regions[idx].float())
        if return_weights:
            return regions, torch.zeros_like(sim).scatter_(1, idx, w)
        return regions

    def pool_regions(self, regions: Tensor) -> Tensor:
        """Image-encoder regions B×D×h×w → B×D×P×P (average pooling)."""
        return F.adaptive_avg_pool2d(regions.float(), self.pool)

    @torch.no_grad()
    def build(self, codes: Tensor, passes: Iterable[tuple[Tensor, Tensor]], seed: int = 0,
              iterations: int = 25) -> Tensor:
        """Fill the bank.

        codes:  N×D global codes of the training images (first pass), for the clustering
        passes: an iterable of (codes B×D, regions B×D×h×w) over the training images (second pass); each image
                is assigned to its nearest centroid and its pooled regions and code are averaged in
        Returns the number of members per entry (K, long).
        """
        centroids = spherical_kmeans(codes, self.entries, seed=seed, iterations=iterations)
        k = centroids.shape[0]
        dev = self.keys.device
        centroids = centroids.to(dev)
        sum_codes = torch.zeros(k, self.dim, device=dev)
        sum_regions = torch.zeros(k, self.dim, self.pool, self.pool, device=dev)
        members = torch.zeros(k, dtype=torch.long, device=dev)
        for c, r in passes:
            c = F.normalize(c.to(dev).float(), dim=1, eps=1e-8)
            a = (c @ centroids.t()).argmax(dim=1)
            sum_codes.index_add_(0, a, c)
            sum_regions.index_add_(0, a, self.pool_regions(r.to(dev)))
            members += torch.bincount(a, minlength=k)
        keep = members > 0  # a centroid that caught no image in the second pass is dropped
        n = int(keep.sum())
        self.keys.zero_()
        self.regions.zero_()
        self.keys[:n] = F.normalize(sum_codes[keep], dim=1, eps=1e-8)
        self.regions[:n] = sum_regions[keep] / members[keep].view(-1, 1, 1, 1).float()
        self.count.fill_(n)
        return members[keep]


def spherical_kmeans(x: Tensor, k: int, *, seed: int = 0, iterations: int = 25,
                     chunk: int = 8192) -> Tensor:
    """K-means on the unit sphere (cosine similarity), k-means++ start from a seeded generator.

    x: N×D. Returns min(k, N)×D unit centroids. Deterministic for a given (x, k, seed) on one device.
    """
    x = F.normalize(x.float(), dim=1, eps=1e-8)
    n = x.shape[0]
    k = min(k, n)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    first = int(torch.randint(n, (1,), generator=gen))
    chosen = [first]
    dist = (1 - x @ x[first]).clamp_min(0)  # cosine distance to the nearest chosen centre
    for _ in range(1, k):
        p = dist.cpu().double()
        if float(p.sum()) <= 0:  # every point coincides with a centre: fill with unused points
            taken = set(chosen)
            nxt = next(i for i in range(n) if i not in taken)
        else:
            nxt = int(torch.multinomial(p / p.sum(), 1, generator=gen))
        chosen.append(nxt)
        dist = torch.minimum(dist, (1 - x @ x[nxt]).clamp_min(0))
    centroids = x[chosen].clone()
    for _ in range(iterations):
        assign = _assign(x, centroids, chunk)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        new = F.normalize(sums, dim=1, eps=1e-8)
        if bool(empty.any()):  # re-seed empty clusters with the points farthest from their centroid
            best = (x * centroids[assign]).sum(1)
            far = best.argsort()[: int(empty.sum())]
            new[empty] = x[far]
        if torch.equal(new, centroids):
            break
        centroids = new
    return centroids


def _assign(x: Tensor, centroids: Tensor, chunk: int) -> Tensor:
    return torch.cat([(x[i:i + chunk] @ centroids.t()).argmax(dim=1) for i in range(0, x.shape[0], chunk)])

