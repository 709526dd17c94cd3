"""MLflow: one MLflow run per training run or report, through `MlflowClient`.

The embedded default is a SQLite store inside the run folder
(``<run dir>/mlflow/mlflow.db``, artifacts in ``<run dir>/mlflow/artifacts``): nothing
to start, and ``mlflow ui --backend-store-uri sqlite:///<run dir>/mlflow/mlflow.db``
shows it. Any tracking URI works instead; an ``http(s)`` server is checked with a
short connection attempt before anything runs, and its requests are kept short (two
retries, 10 s), so a server that goes away mid-run costs seconds, not minutes.
Metrics are sent in batches (a SQLite commit per step would cost more than a small
training step); text, findings and videos are artifacts, and a finding also sets the
tag ``diagnose.<symptom>``. Imports `mlflow` only when a tracker is opened.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.trackers.base import Status, Tracker, Video, flatten
from vla_eval.trackers.reach import check_reachable
from vla_eval.trackers.video import is_file, mp4_file

INSTALL = "pip install 'vla-eval[trackers]' (or pip install mlflow)"
DEFAULT_EXPERIMENT = "vla-eval"
FLUSH_METRICS = 500  # pending metrics that trigger a batch (MLflow takes 1000 at most)
FLUSH_SECONDS = 10.0
MAX_PARAM = 500  # characters of a parameter value kept


class MlflowTracker(Tracker):
    """An MLflow run.

    Args:
        client: an `MlflowClient`.
        run_id: the run's id.
        location: the tracking URI, for messages.
        scratch: a folder for files made on the way (videos encoded to MP4).
    """

    name = "mlflow"

    def __init__(self, client: Any, run_id: str, location: str, scratch: Path) -> None:
        super().__init__(location)
        self.client, self.run_id, self._scratch = client, run_id, scratch
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def _scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, v, now, step) for k, v in values.items())
        if (
            len(self._pending) >= FLUSH_METRICS
            or time.monotonic() - self._last_flush > FLUSH_SECONDS
        ):
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), 1000):
            self.client.log_batch(self.run_id, metrics=pending[i : i + 1000])
        self._last_flush = time.monotonic()

    def _text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"text/{tag}/step_{step:06d}.md")

    def _params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = [Param(k, str(v)[:MAX_PARAM]) for k, v in flatten(params, sep=".").items()]
        for i in range(0, len(flat), 100):  # MLflow takes 100 parameters per batch
            self.client.log_batch(self.run_id, params=flat[i : i + 100])

    def _finding(self, finding: Any, level: int, step: int) -> None:
        super()._finding(finding, level, step)
        self._flush()  # the finding's scalar shows up now, not with the next batch
        self.client.set_tag(
            self.run_id, f"diagnose.{finding.symptom}", f"{finding.severity} at step {step}"
        )

    def _video(self, video: Video, tag: str, step: int, fps: int) -> None:
        path = mp4_file(video, fps, self._scratch, f"{tag.replace('/', '_')}_{step:06d}")
        self.client.log_artifact(self.run_id, str(path), f"videos/{tag}")
        if not is_file(video):
            path.unlink(missing_ok=True)  # the artifact store holds its copy

    def _file(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), folder or None)

    def _close(self, status: Status) -> None:
        self._flush()
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "FAILED")


def open_mlflow(
    run_dir: Path,
    uri: str | None,
    experiment: str | None,
    run_name: str,
    resume_id: str | None = None,
) -> MlflowTracker:
    """A new MLflow run in `experiment` (default ``vla-eval``) of the store at `uri`
    (default: a SQLite store inside `run_dir`), or run `resume_id` continued when the
    store still has it.

    Raises:
        UsageError: mlflow is not installed, the server cannot be reached, or the store
            refuses the run.
    """
    try:
        import mlflow  # noqa: F401 - the package itself first: it is what is missing
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(f"--tracker mlflow needs MLflow: {INSTALL}") from None
    store = run_dir.resolve() / "mlflow"
    artifacts = None
    if uri is None:
        store.mkdir(parents=True, exist_ok=True)
        uri, artifacts = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
    elif uri.startswith(("http://", "https://")):
        check_reachable(uri, "MLflow tracking server")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    name = experiment or DEFAULT_EXPERIMENT
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # no "creating initial MLflow database tables" lines
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the store's own deprecation notices
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(name)
            exp_id = found.experiment_id if found else client.create_experiment(name, artifacts)
            run = _continued(client, resume_id) or client.create_run(exp_id, run_name=run_name)
    except Exception as exc:  # any store error is the user's URI or server
        reason = " ".join(str(exc).split())[:300]
        raise UsageError(f"MLflow store {uri}: cannot start a run ({reason})") from None
    finally:
        quiet.setLevel(level)
    return MlflowTracker(client, run.info.run_id, uri, store / "videos")


def _continued(client: Any, run_id: str | None) -> Any:
    """Run `run_id` of the store, marked running again; None when there is none."""
    if run_id is None:
        return None
    try:
        run = client.get_run(run_id)
    except Exception:  # gone from the store: start a new run
        return None
    client.update_run(run_id, status="RUNNING")
    return run
