"""Dense Predictive Coding on pose: predict the embeddings of future blocks, score with InfoNCE.

A window is `S = num_seq` blocks of `L = seq_len` frames. Each block goes through
the ST-GCN encoder and is pooled to one embedding; a GRU reads the first `S - P`
block embeddings; the predictor then rolls out `P = pred_step` future embeddings,
feeding each prediction back into the GRU. Prediction `[b, k]` is scored with
InfoNCE against true future embeddings; the positive is the same video `b` and
step `k`.

Negatives (`model.negatives`):

* `batch` (OpenHands): prediction `[b, k]` is classified among every true future
  embedding of the batch `[b', k']`; logits `(B*P, B*P)`, positive on the diagonal.
* `same_video`: only among the `P` future embeddings of its own video; logits
  `(B*P, P)`, positive at column `k`. The task can then only be solved by telling
  the steps of one video apart, i.e. by predicting motion; nothing about which
  video (signer, body shape) a block comes from helps.
* `both`: the sum of the two losses.

Diagnostics (`pretext_diagnostics`), whatever the negatives: `top1_video`, how
often the best-scoring candidate of the whole batch is from the right video
(chance `1/B`), and `top1_step`, how often the right step wins among the `P`
candidates of the right video (chance `1/P`). A step accuracy stuck at chance
while the video accuracy climbs means the encoder recognises videos, not motion.

Layout: predictions and targets are both kept as `(B, P, D)` and flattened the
same way (row `b * P + k`). OpenHands flattens with
`pred.permute(0, 2, 1).view(B*P, D)`: each row stays within its video, but
holds feature dimensions of different steps interleaved, so a "step" row is a
mixture of steps (`tests/test_dpc_model.py` pins this down).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from schemas.config_dpc import DPCModel

from .stgcn import STGCNEncoder

NEGATIVES = ("batch", "same_video", "both")


def _scores(pred: torch.Tensor, target: torch.Tensor, similarity: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (B, P, D), got {tuple(pred.shape)} and {tuple(target.shape)}")
    q, k = pred.float(), target.float()
    if similarity == "cosine":
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    return q, k


def batch_logits(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.1,
                 similarity: str = "cosine") -> torch.Tensor:
    """(B*P, B*P): row b*P+k scores prediction [b, k] against every target [b', k'] (column b'*P+k')."""
    q, k = _scores(pred, target, similarity)
    b, p, d = q.shape
    return q.reshape(b * p, d) @ k.reshape(b * p, d).t() / temperature


def same_video_logits(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.1,
                      similarity: str = "cosine") -> torch.Tensor:
    """(B*P, P): row b*P+k scores prediction [b, k] against the targets [b, k'] of its own video (column k')."""
    q, k = _scores(pred, target, similarity)
    b, p, _ = q.shape
    return torch.bmm(q, k.transpose(1, 2)).reshape(b * p, p) / temperature


def info_nce(pred: torch.Tensor, target: torch.Tensor, temperature: float = 0.1,
             similarity: str = "cosine", negatives: str = "batch") -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, top-1 accuracy) of (B, P, D) predictions against (B, P, D) targets.

    Scores are cosines (or dot products) / temperature, computed in float32 even
    under autocast. With cosine, a prediction equal to its target always scores
    highest. Top-1 is that of the task `negatives` sets (of the batch task for `both`).
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    b, p = pred.shape[:2]
    loss = pred.new_zeros((), dtype=torch.float32)
    top1 = None
    if negatives in ("batch", "both"):
        logits = batch_logits(pred, target, temperature, similarity)
        labels = torch.arange(b * p, device=pred.device)
        loss = loss + F.cross_entropy(logits, labels)
        top1 = (logits.argmax(dim=1) == labels).float().mean()
    if negatives in ("same_video", "both"):
        logits = same_video_logits(pred, target, temperature, similarity)
        labels = torch.arange(p, device=pred.device).repeat(b)
        loss = loss + F.cross_entropy(logits, labels)
        if top1 is None:
            top1 = (logits.argmax(dim=1) == labels).float().mean()
    assert top1 is not None
    return loss, top1


@torch.no_grad()
def pretext_diagnostics(pred: torch.Tensor, target: torch.Tensor,
                        similarity: str = "cosine") -> dict[str, torch.Tensor]:
    """`top1_video` (best candidate of the batch is from the right video; chance 1/B) and
    `top1_step` (right step among the P candidates of the right video; chance 1/P)."""
    b, p = pred.shape[:2]
    full = batch_logits(pred.detach(), target.detach(), 1.0, similarity)
    video_of = torch.arange(b, device=pred.device).repeat_interleave(p)
    top1_video = (video_of[full.argmax(dim=1)] == video_of).float().mean()
    own = same_video_logits(pred.detach(), target.detach(), 1.0, similarity)
    top1_step = (own.argmax(dim=1) == torch.arange(p, device=pred.device).repeat(b)).float().mean()
    return {"top1_video": top1_video, "top1_step": top1_step}


class DPC(nn.Module):
    """Encoder + GRU aggregator + predictor; `forward` gives (predictions, targets), both (B, P, D)."""

    def __init__(self, in_channels: int, joints: str, cfg: DPCModel, num_seq: int, pred_step: int):
        super().__init__()
        if not 0 < pred_step < num_seq:
            raise ValueError(f"need 0 < pred_step < num_seq, got {pred_step} and {num_seq}")
        self.num_seq, self.pred_step = num_seq, pred_step
        self.temperature, self.similarity, self.negatives = cfg.temperature, cfg.similarity, cfg.negatives
        self.encoder = STGCNEncoder(in_channels, joints, cfg.encoder)
        d = self.encoder.out_channels
        self.aggregator = nn.GRU(d, d, num_layers=cfg.gru_layers, batch_first=True)
        self.predictor = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))

    def encode_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, C, L, V) → (B, S, D): one embedding per block."""
        b, s = x.shape[:2]
        return self.encoder.embed(x.flatten(0, 1)).view(b, s, -1)

    def predict(self, context: torch.Tensor, steps: int) -> torch.Tensor:
        """Roll the GRU over (B, S-P, D) context, then predict `steps` embeddings: (B, steps, D)."""
        _, hidden = self.aggregator(context)
        preds = []
        for k in range(steps):
            p = self.predictor(hidden[-1])
            preds.append(p)
            if k + 1 < steps:  # feed the prediction back for the next step
                _, hidden = self.aggregator(p.unsqueeze(1), hidden)
        return torch.stack(preds, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 5 or x.shape[1] != self.num_seq:
            raise ValueError(f"DPC expects (B, {self.num_seq}, C, L, V) windows, got {tuple(x.shape)}")
        feats = self.encode_blocks(x).float()
        split = self.num_seq - self.pred_step
        # The encoder runs under the loop's autocast (bf16 on GPU); the small GRU and
        # predictor stay in fp32, which every backend supports for recurrent layers.
        with torch.autocast(device_type=feats.device.type, enabled=False):
            pred = self.predict(feats[:, :split], self.pred_step)
        return pred, feats[:, split:]

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return info_nce(pred, target, self.temperature, self.similarity, self.negatives)
