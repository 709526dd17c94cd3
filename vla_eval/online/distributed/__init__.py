"""Online runs past one process: the Ray backend (`run_ray`).

`ray_run` is the driver (plan, dispatch, the one episodes file), `actors` the
environment workers and the policy server. Ray is imported only when a run starts
(the extra ``ray``), so importing this package is cheap.
"""

from vla_eval.online.distributed.ray_run import RayRun, run_ray

__all__ = ["RayRun", "run_ray"]
