"""The world models' accelerator: R3DM's two RSSMs run in one loop with matmuls batched over the
models, the filtering scan trained through a hand-written backward (scan.py), gradient-free
imagination (imagine.py), and the batch's padding skipped (packing.py, padding_free.py).

It reads the models only through world_model/rssm.py's public interface (`scan_weights`,
`prior_weights`, `norm_eps`, `sizes`, `embed`, `step_inputs`, `initial`, `prior`, `latent`, `decode`,
`filter_noise`, `imagination_noise`), and tests hold it to RSSM.observe / imagine / loss: values,
sampled latents and gradients (tests/unit/test_wm_accel.py). `wm_fused: false` runs without it.
"""
from __future__ import annotations

from r3dm_epymarl.world_model.accel.imagine import imagine_many
from r3dm_epymarl.world_model.accel.packing import Packing
from r3dm_epymarl.world_model.accel.padding_free import predict_packed
from r3dm_epymarl.world_model.accel.scan import loss_many, observe_many
from r3dm_epymarl.world_model.predict import Loops

FUSED_LOOPS = Loops(observe_many, imagine_many)  # world_model.predict.predict through the fused loops

__all__ = ["FUSED_LOOPS", "Packing", "imagine_many", "loss_many", "observe_many", "predict_packed"]
