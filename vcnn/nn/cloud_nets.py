"""Networks on clouds that pool their members with the quadrature weights (Deep Sets family).

- `VectorCloudNet` (Zhou, Han & Xiao 2022): an embedding network maps each member's invariant
  scalars to G (n x m); the cloud average L = sum_j w_j G_j^T Q_j (m x k dim) of the embedding
  times the member vectors Q_j rotates as L R^T; D = L L*^T with L* the first m' rows of L is
  then invariant (m x m'), and a fitting network maps D to the outputs. Invariance to rotations
  and reflections (R R^T = I), translations (only relative positions enter), permutations and
  the choice of cloud points (a weighted average) holds by construction, not by training.
  Equivariant outputs come from the rows of L (each row a vector that turns with the frame), as
  in the tensorial follow-up of VCNN: a vector is a combination of the rows with invariant
  coefficients from the fitting network, or the output of unitary-equivariant vector layers
  (Ma & Chan, `vcnn.nn.layers`) on the rows; a tensor is L*^T C L* with C symmetric and invariant.
- `LocalMLP`: a fitting network on the cloud average of the invariant scalars; with a
  one-point cloud (`KNearest(k=1)`: the query node itself) it is the classic local closure.
- `RawCloudNet`: the same embedding and average, but each member's raw vector components enter
  the embedding next to its scalars (Deep Sets on raw coordinates). Invariant to translations
  and permutations only: the baseline that shows what a frame-dependent network does.
"""

from __future__ import annotations

import torch
from torch import nn

from vcnn.nn.base import OUTPUT_KINDS, CloudNet, CloudNetConfig
from vcnn.nn.layers import UnitaryVectorHead, mlp, sigmoid_embedding, sigmoid_weights


PIECE = 2**15
"""Members per piece of an inference batch times the bytes of a number: 8,192 members in float32,
4,096 in float64. The paper's network ran at about 60 GFLOP/s with up to 20,000 members a call and
at 24 with 40,000 or more (Intel, 2 threads, 2 MB of L2 cache, float32, beside a training on the
same cores); on an AMD EPYC (1 MB of L2 a core) the fixture closure's float64 calls took 0.80 of
their time in pieces of 4,096 members against 16,384, its float32 calls the same from 4,096 to
32,768 (docs/results.md). On a GPU the batch goes whole: in pieces, one small kernel launched after
another, an H200 ran the network at 0.7 % of its float32 matrix product; whole, at 27 %."""


class VectorCloudNet(CloudNet):
    """Invariant scalars and equivariant vectors and tensors from a cloud of vectors and scalars."""

    output_kinds = OUTPUT_KINDS

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        m, rows = config.embedding[-1], config.embedding[-1] * config.n_vectors
        self.n_coefficients = {
            "scalar": len(config.names("scalar")),
            "vector": 0 if config.vector_head else rows * len(config.names("vector")),
            "tensor": (config.m_prime * config.n_vectors) ** 2 * len(config.names("tensor")),
        }
        self.embed = mlp((config.n_scalars,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((m * config.m_prime,) + config.fitting + (sum(self.n_coefficients.values()),), config.activation, False)
        self.norm = nn.LayerNorm(m * config.m_prime) if config.invariant_norm else nn.Identity()
        if config.vector_head and config.names("vector"):
            self.vector_head = UnitaryVectorHead((rows,) + config.vector_head + (len(config.names("vector")),))

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """vectors (B, n, k, dim), scalars (B, n, f), weights (B, n) summing to 1 -> (B, width)."""
        batch, n = weights.shape
        dim, m_prime = self.config.dim, self.config.m_prime
        q = vectors.reshape(batch, n, -1)  # each vector's components stay together: Q R~ with R~ orthogonal
        moments = self.moments(scalars, q, weights)  # (B, m, k dim)
        invariant = moments @ moments[:, :m_prime].transpose(1, 2)  # (B, m, m')
        coefficients = self.fit(self.norm(invariant.reshape(batch, -1)))
        scalar, vector, tensor = coefficients.split(list(self.n_coefficients.values()), dim=1)
        rows = moments.reshape(batch, -1, dim)  # (B, m k, dim): vectors that turn with the frame
        parts = [scalar]
        if self.config.names("vector"):
            if self.config.vector_head:
                parts.append(self.vector_head(rows).reshape(batch, -1))
            else:
                parts.append((vector.reshape(batch, -1, rows.shape[1]) @ rows).reshape(batch, -1))
        if self.config.names("tensor"):
            first = rows[:, : m_prime * self.config.n_vectors]  # L*: the rows of the first m' embeddings
            c = tensor.reshape(batch, -1, first.shape[1], first.shape[1])
            symmetric = (c + c.transpose(2, 3)) / 2
            parts.append(torch.einsum("zai,ztac,zcj->ztij", first, symmetric, first).reshape(batch, -1))
        return self.denormalized(torch.cat(parts, dim=1))

    def moments(self, scalars: torch.Tensor, q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """L = sum_j w_j G_j^T Q_j, G the embedding of the members' normalized scalars. A tanh
        embedding runs as `sigmoid_embedding`, G = 2 S - 1, and L = 2 S^T (w Q) - sum_j w_j Q_j,
        without gradients (inference, validation) and, if `sigmoid_training` is set, in training
        too: the same numbers to rounding, faster on CPU (docs/results.md). Training keeps the plain
        layers by default, so that earlier trainings reproduce bit for bit."""
        if self.config.activation != "tanh" or (torch.is_grad_enabled() and not self.sigmoid_training):
            return torch.einsum("bn,bnm,bnc->bmc", weights, self.embed(self.normalized_scalars(scalars)), q)
        folded = sigmoid_weights(self.embed, self.scalar_mean, self.scalar_std)
        step = weights.shape[0]
        if weights.is_cpu and not torch.is_grad_enabled():  # in pieces whose layers stay in the cache
            step = max(1, PIECE // weights.element_size() // weights.shape[1])
        parts = [self._sigmoid_moments(folded, scalars[i : i + step], q[i : i + step], weights[i : i + step]) for i in range(0, weights.shape[0], step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @staticmethod
    def _sigmoid_moments(folded: list, scalars: torch.Tensor, q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        weighted = weights[..., None] * q  # (B, n, k dim): cheaper than weighting the wider S
        s = sigmoid_embedding(folded, scalars)
        # ((w Q)^T S)^T, not S^T (w Q): the gradient of S comes back contiguous, and without gradients
        # the product ran 7 times faster in float32, 1.5 to 1.6 in float64 (AMD EPYC; docs/results.md)
        return 2 * (weighted.transpose(1, 2) @ s).transpose(1, 2) - weighted.sum(1, keepdim=True)


class LocalMLP(CloudNet):
    """Outputs from the cloud-averaged invariant scalars alone (no vectors)."""

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        widths = (config.n_scalars,) + config.embedding + config.fitting + (config.width,)
        self.fit = mlp(widths, config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mean = torch.einsum("bn,bnf->bf", weights, self.normalized_scalars(scalars))
        return self.denormalized(self.fit(mean))


class RawCloudNet(CloudNet):
    """Deep Sets on each member's scalars and raw vector components: not rotation invariant.
    Vector and tensor outputs are raw components, so they do not turn with the frame either."""

    invariant_to = ("translation", "permutation")
    output_kinds = OUTPUT_KINDS

    def __init__(self, config: CloudNetConfig):
        super().__init__(config)
        width = config.n_scalars + config.n_vectors * config.dim
        self.embed = mlp((width,) + config.embedding, config.activation, last_activation=True)
        self.fit = mlp((config.embedding[-1],) + config.fitting + (config.width,), config.activation, False)

    def forward(self, vectors: torch.Tensor, scalars: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        batch, n = weights.shape
        members = torch.cat([self.normalized_scalars(scalars), vectors.reshape(batch, n, -1)], dim=-1)
        pooled = torch.einsum("bn,bnm->bm", weights, self.embed(members))
        return self.denormalized(self.fit(pooled))
