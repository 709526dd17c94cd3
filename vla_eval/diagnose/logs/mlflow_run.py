"""One MLflow run -> `Series`, read through ``MlflowClient``.

The run is named by a tracking URI and a run id, or found from a path: an SQLite store
file (``mlflow.db``), a ``mlruns`` file store, or one run's folder inside it. A store
that holds one run needs no id. mlflow is imported here only; this module must not
import torch.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vla_eval.diagnose.logs import Series
from vla_eval.errors import UsageError

_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"


def tracking_uri(path: Path) -> tuple[str, str | None]:
    """(tracking URI, run id or None) for a store file, a store folder or a run folder."""
    path = path.resolve()
    if path.is_file():
        return f"sqlite:///{path}", None
    if (path / "meta.yaml").is_file() and (path / "metrics").is_dir():  # one run's folder
        return path.parent.parent.as_uri(), path.name
    return path.as_uri(), None


# the defaults this reader runs mlflow with, unless set: a server that does not answer
# is an error within seconds, not after mlflow's minutes of retries
_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextmanager
def _mlflow_env(uri: str):
    """Short retries; and let mlflow open an existing file store (mlflow 3 refuses one
    by default). Variables the user has set are kept."""
    wanted = dict(_ENV)
    if uri.startswith("file:"):
        wanted[_FILE_STORE_ENV] = "true"
    added = [k for k in wanted if k not in os.environ]
    os.environ.update({k: wanted[k] for k in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def read_mlflow(path: Path | None, uri: str | None, run_id: str | None) -> Series:
    """Every metric history of one run.

    Raises:
        UsageError: mlflow missing, the store or run not found or not reachable, or a
            store of several runs and no ``run_id`` (the message lists them).
    """
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(
            "reading MLflow runs needs mlflow: pip install 'vla-eval[trackers]'"
        ) from None
    if uri is None:
        if path is None:
            raise UsageError("--run-id needs --mlflow-uri or the path of an MLflow store")
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        uri, found = tracking_uri(Path(path))
        run_id = run_id or found
    elif path is not None:
        raise UsageError("pass either an MLflow store path or --mlflow-uri, not both")
    try:
        with _mlflow_env(uri):
            client = MlflowClient(tracking_uri=uri)
            run_id = run_id or _only_run(client, uri)
            run = client.get_run(run_id)
            tags = {
                key: sorted(
                    {
                        int(m.step): float(m.value) for m in client.get_metric_history(run_id, key)
                    }.items()
                )
                for key in run.data.metrics
            }
    except MlflowException as exc:
        raise UsageError(f"MLflow {uri} run {run_id}: {_first_line(exc)}") from None
    except OSError as exc:  # an unreachable server
        raise UsageError(f"MLflow {uri}: cannot reach it: {exc}") from None
    return Series(f"{uri} run {run_id}", "mlflow", tags)


def _only_run(client: Any, uri: str) -> str:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=11) if experiments else []
    if len(runs) == 1:
        return runs[0].info.run_id
    if not runs:
        raise UsageError(f"MLflow {uri} holds no runs")
    ids = ", ".join(r.info.run_id for r in runs[:10])
    raise UsageError(f"MLflow {uri} holds several runs; pick one with --run-id: {ids}")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
