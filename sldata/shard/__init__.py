"""`sldata shard` (SPEC §2.3): a v1 or v2 feature dataset → v2 shards of N videos, verified before it appears.

`plan` decides every shard file's videos once, `copy` writes them in parallel
processes, `verify` checks the staged result against the plan, `run` ties them
together with the output rule, the lock and the atomic rename.
"""

from .plan import RepPlan, ShardPlan, default_dst, parse_compression, plan_shard
from .run import ShardResult, VerificationError, shard
from .verify import verify

__all__ = ["plan_shard", "shard", "verify", "ShardPlan", "RepPlan", "ShardResult", "VerificationError",
           "default_dst", "parse_compression"]
