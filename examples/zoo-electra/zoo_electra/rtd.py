"""ELECTRA replaced-token detection (Clark et al., 2020), as a third-party objective.

    prepare   BERT masking of ``rate`` of the maskable tokens (ELECTRA: 85% [MASK], 15% unchanged)
    compute   1. the generator predicts the masked tokens (MLM loss);
              2. a token is sampled from its softmax at every masked position (no gradient);
              3. the backbone (the discriminator) reads the original row with those samples
                 in place and predicts, for every non-padding token, whether it was replaced;
                 a sample equal to the original token counts as original, as in ELECTRA;
    loss      generator MLM loss + disc_weight x mean discriminator binary cross-entropy

In training mode samples are drawn from torch's global generator (so checkpoints restore them and
resumed runs are exact); in eval mode from a fixed-seed generator, so evaluation is repeatable
and leaves the training random stream untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.batch import Batch, SpecialTokens
from zoo.models import Backbone, BackboneSpec
from zoo.objectives import (
    IGNORE,
    LossOutput,
    MaskedLM,
    MLMConfig,
    Objective,
    gather_positions,
    perplexity,
)
from zoo_electra.generator import GeneratorDims, RTDHeads

EVAL_SAMPLING_SEED = 0


@dataclass
class RTDConfig:
    rate: float = 0.15  # fraction of maskable tokens the generator predicts (ELECTRA's mask_prob)
    mask_ratio: float = 0.85  # of those: [MASK] in the generator's input (ELECTRA keeps the other 15%)
    random_ratio: float = 0.0  # of those: a random token in the generator's input
    whole_word: bool = False  # mask whole words (needs word starts from the data pipeline)
    generator_size: float = 0.25  # generator hidden size, FFN size and heads / the discriminator's
    generator_layers: int = 0  # 0 -> as many layers as the discriminator
    disc_weight: float = 50.0  # lambda: weight of the discriminator loss
    temperature: float = 1.0  # of the generator's softmax when sampling

    def __post_init__(self) -> None:
        MLMConfig(rate=self.rate, mask_ratio=self.mask_ratio, random_ratio=self.random_ratio)  # same checks
        if not 0.0 < self.generator_size <= 1.0:
            raise ValueError(f"generator_size is a fraction of the discriminator's width in (0, 1], "
                             f"got {self.generator_size}")
        if self.generator_layers < 0:
            raise ValueError(f"generator_layers must be >= 0 (0: as many as the discriminator), "
                             f"got {self.generator_layers}")
        if self.disc_weight <= 0 or self.temperature <= 0:
            raise ValueError(f"disc_weight and temperature must be positive, got {self.disc_weight} "
                             f"and {self.temperature}")


def generator_dims(spec: BackboneSpec, config: RTDConfig) -> GeneratorDims:
    """ELECTRA scales hidden size, FFN size and heads by ``generator_size`` and keeps the depth."""
    f = config.generator_size
    hidden = max(1, round(spec.hidden_size * f))
    heads = max(1, round(spec.num_heads * f))
    while hidden % heads:
        heads -= 1
    return GeneratorDims(hidden_size=hidden, num_heads=heads,
                         intermediate_size=max(1, round(spec.intermediate_size * f)),
                         num_layers=config.generator_layers or spec.num_layers)


def replace_tokens(input_ids: Tensor, positions: Tensor, labels: Tensor, sampled: Tensor) -> tuple[Tensor, Tensor]:
    """The discriminator's input and its labels.

    input_ids (B, T): the masked row; positions, labels (B, P): masked positions and their original
    ids (``IGNORE`` on padding entries); sampled (B, P): the generator's samples.
    Returns (B, T) ids (original tokens, samples at the masked positions) and (B, T) bool
    "replaced" (a sample equal to the original token is not a replacement).
    """
    batch, seq_len = input_ids.shape
    valid = labels != IGNORE
    index = torch.where(valid, positions, seq_len)  # padding entries write into a spare column
    spare = torch.cat([input_ids, input_ids.new_zeros(batch, 1)], dim=1)  # (B, T + 1)
    original = spare.scatter(1, index, torch.where(valid, labels, 0))[:, :seq_len]
    corrupted = spare.scatter(1, index, torch.where(valid, sampled, 0))[:, :seq_len]
    return corrupted, corrupted != original


class ReplacedTokenDetection(Objective):
    """ELECTRA: a small generator fills masked positions; the backbone detects replaced tokens."""

    name = "rtd"
    Config = RTDConfig
    requires = frozenset({"bidirectional"})
    attention = "bidirectional"
    corrupts_inputs = True

    def __init__(self, config: RTDConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        c: RTDConfig = self.config
        # Masking is BERT's, with ELECTRA's proportions; MaskedLM checks the tokenizer and vocabulary.
        self.masker = MaskedLM(MLMConfig(rate=c.rate, mask_ratio=c.mask_ratio, random_ratio=c.random_ratio,
                                         whole_word=c.whole_word), tokens, spec, name=self.name)
        self.dims = generator_dims(spec, c)

    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        if "bidirectional" not in capabilities:
            return (f"needs bidirectional attention for the discriminator; this backbone offers "
                    f"{', '.join(sorted(capabilities))}")
        return None

    # --- data ----------------------------------------------------------------------------------
    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        return self.masker.prepare(data, rng)  # targets[name] = {positions, labels}, (B, P)

    # --- model ---------------------------------------------------------------------------------
    def build_heads(self, backbone: Backbone) -> nn.Module:
        return RTDHeads(backbone, self.dims)

    def sample(self, logits: Tensor, training: bool) -> Tensor:
        """One token per row of ``logits`` (..., V) from softmax(logits / temperature)."""
        flat = logits.detach().float().reshape(-1, logits.shape[-1]) / self.config.temperature
        flat[:, self.tokens.vocab_size:] = float("-inf")  # embedding rows beyond the tokenizer
        generator = None
        if not training:
            generator = torch.Generator(device=flat.device).manual_seed(EVAL_SAMPLING_SEED)
        drawn = torch.multinomial(flat.softmax(-1), 1, generator=generator)  # (N, 1)
        return drawn.view(logits.shape[:-1])

    def compute(self, model: Any, batch: Batch) -> LossOutput:
        heads: RTDHeads = model.heads[self.name]
        t = batch.targets[self.name]
        positions, labels = t["positions"], t["labels"]  # (B, P)
        # 1. generator: masked LM at the masked positions
        gen_hidden = heads.generator(batch.input_ids, batch.layout(), batch.token_type_ids, batch.position_ids)
        gen_logits = heads.generator.logits(gather_positions(gen_hidden, positions)).float()  # (B, P, V)
        masked = labels != IGNORE
        n_masked = masked.sum()
        gen_loss = F.cross_entropy(gen_logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                                   reduction="sum") / n_masked.clamp(min=1)
        gen_correct = ((gen_logits.detach().argmax(-1) == labels) & masked).sum()
        # 2. sample replacements (no gradient), 3. discriminator on the corrupted row
        sampled = self.sample(gen_logits, heads.training)
        disc_ids, replaced = replace_tokens(batch.input_ids, positions, labels, sampled)
        hidden = model.backbone(**batch.replace(input_ids=disc_ids).backbone_inputs())  # (B, T, h)
        disc_logits = heads.discriminator(hidden).float()  # (B, T)
        real = batch.doc_ids >= 0
        n_real = real.sum()
        target = replaced.float()
        bce = F.binary_cross_entropy_with_logits(disc_logits, target, reduction="none")
        disc_loss = (bce * real).sum() / n_real.clamp(min=1)
        disc_correct = (((disc_logits.detach() > 0) == replaced) & real).sum()
        loss = gen_loss + self.config.disc_weight * disc_loss
        g, d = n_masked.clamp(min=1), n_real.clamp(min=1)
        metrics = {
            "gen/loss": gen_loss.detach(), "gen/acc": gen_correct / g,
            "disc/loss": disc_loss.detach(), "disc/acc": disc_correct / d,
            "disc/replaced_frac": (replaced & real).sum() / d,
        }
        counts = {k: (n_masked if k.startswith("gen/") else n_real) for k in metrics}
        return LossOutput(loss, n_real, metrics, metric_counts=counts)

    # --- accounting ------------------------------------------------------------------------------
    def head_flops(self, batch: Batch) -> float:
        """Generator (embedding projection, layers, MLM head at the masked positions) plus the
        discriminator head at every position; the discriminator backbone is counted by the trainer."""
        rows, seq_len = batch.shape
        predicted = int(np.prod(tuple(batch.targets[self.name]["positions"].shape)))
        s, g = self.spec, self.dims
        h, v = s.hidden_size, s.vocab_size
        layer = 2 * (4 * g.hidden_size ** 2 + 2 * g.hidden_size * g.intermediate_size) + 4 * seq_len * g.hidden_size
        per_token = 2 * h * g.hidden_size + g.num_layers * layer + (2 * h * h + 2 * h)  # + discriminator head
        head = 2 * g.hidden_size * h + 2 * h * v  # generator's prediction head, per masked position
        return float(rows * seq_len * per_token + predicted * head)

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        return {"gen/ppl": perplexity(means["gen/loss"])} if "gen/loss" in means else {}
