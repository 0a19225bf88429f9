"""Settings, read once at the edge: explicit arguments > YAML config file > CASCADE_* environment.

Environment variables (all optional):
  CASCADE_CONFIG        path of the YAML config file (default: the packaged default.yaml)
  CASCADE_DATA_DIR      directory for the SQLite audit database, assembled models, Qdrant store
                        and calibration artifacts (default: the user's data dir for slm-cascade)
  CASCADE_DATABASE_URL  SQLAlchemy URL of the audit store (default: SQLite in the data dir)
  CASCADE_QDRANT_URL    Qdrant server for the example store (default: local mode in the data dir)
  CASCADE_TIERS         the model ladder as JSON (normally given in the YAML file)
  CASCADE_TASKS         per-task settings as JSON (normally given in the YAML file)
  CASCADE_BATCH_MODE    how `cascade batch submit` runs a job: embedded (in this process, default)
                        or distributed (on Celery workers started with `cascade worker`)
  CASCADE_BROKER_URL    Celery broker of distributed jobs (default redis://127.0.0.1:6379/0;
                        RabbitMQ: amqp://guest:guest@127.0.0.1:5672//)
  CASCADE_BATCH_MAX_ESCALATION_SHARE  default share of a job's items that may go past tier 1 (0..1)
  CASCADE_BATCH_MAX_SPEND  default cap on a job's estimated escalation spend (default: none)
  CASCADE_BATCH_MAX_FILE_MB, CASCADE_BATCH_MAX_ROW_KB  input limits of a batch file and of one row
  CASCADE_BATCH_MAX_RETRIES, CASCADE_BATCH_RETRY_BACKOFF_S  provider errors: retries and first backoff
  CASCADE_BATCH_STORAGE_RETRIES  database errors: retries before an item is given up to the sweeper
  CASCADE_BATCH_ITEM_LEASE_S  an item handed to a worker and unfinished after this long is re-sent
  CASCADE_BATCH_WINDOW  items of one job in flight at once (distributed mode)
  CASCADE_BATCH_SWEEP_INTERVAL_S  how often a worker looks for jobs to dispatch and advance
  CASCADE_SERVICE_HOST, CASCADE_SERVICE_PORT  where `cascade serve` listens (127.0.0.1:8000)
  CASCADE_SERVICE_WORKERS  server processes (1; more need CASCADE_QDRANT_URL and a shared database)
  CASCADE_SERVICE_MAX_BODY_KB  largest request body accepted (2048 kB; larger: 413)
  CASCADE_SERVICE_RATE_LIMIT_PER_MIN  requests per minute per API key (600; 0: no limit; over: 429)
  CASCADE_SERVICE_WEBHOOK_MAX_TRIES  deliveries of a job-completion webhook before it is given up (5)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from platformdirs import user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents import secrets
from agents.errors import ConfigError
from agents.redaction import DEFAULT_ENTITIES, validate_entities

from orchestrator.core.tasks import TASK_DEFAULTS, TASKS

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
BUNDLED_HEADS = Path(__file__).with_name("heads")  # trained heads shipped with the package (heads/README.md)
KNOWN_TASKS = tuple(TASKS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prices(_Strict):
    """Price in the caller's currency per 1,000 tokens; None means ask litellm's price map."""

    input_per_1k: float | None = Field(default=None, ge=0)
    output_per_1k: float | None = Field(default=None, ge=0)


class LocalServe(_Strict):
    """How this tier's server runs on this machine (llama-cpp-python's OpenAI-compatible server)."""

    model_path: str
    start: Literal["on_demand", "manual"] = Field(default="on_demand", description=(
        "on_demand: the first call that needs this tier starts its server if nothing answers on the port, "
        "and the Cascade that started it stops it when it closes; manual: only `cascade models serve` starts it"))
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    n_ctx: int = Field(default=2048, ge=128)
    chat_format: str | None = Field(default=None, description="llama-cpp-python chat format, e.g. gemma")


class LlamaCppTier(_Strict):
    """A GGUF model loaded in-process through llama-cpp-python."""

    kind: Literal["llama_cpp"]
    name: str = Field(min_length=1)
    locality: Literal["local"] = Field(default="local", description="in-process: data never leaves the machine")
    model_path: str = Field(min_length=1, description="GGUF path, or bundled:smollm2 / bundled:gemma3-270m")
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    prices: Prices = Prices(input_per_1k=0.0, output_per_1k=0.0)


class LitellmTier(_Strict):
    """Any model litellm can call: a cloud model, or the local OpenAI-compatible server."""

    kind: Literal["litellm"]
    name: str = Field(min_length=1)
    # Required, no default: only the operator knows whether api_base is this machine or a provider.
    locality: Literal["local", "external"] = Field(
        description="local: the endpoint runs on this machine or network under your control; external: data "
                    "leaves it (a cloud provider); the task's privacy policy decides what may be sent")
    model: str = Field(min_length=1, description="litellm model string, e.g. openai/gpt-4o-mini")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=16, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description="extra litellm.completion keyword arguments")
    schema_mode: Literal["json_schema", "json_object_schema", "none"] = Field(
        default="json_schema", description="how to constrain output to a JSON schema: OpenAI structured outputs, "
        "llama-cpp-python's json_object+schema, or not at all (free text is matched to a label)")
    logprobs: bool = Field(default=True, description="ask for token log-probabilities (the answer's confidence)")
    prices: Prices = Prices()
    serve: LocalServe | None = None

    @model_validator(mode="after")
    def _served_here(self) -> "LitellmTier":
        if self.serve is not None:
            expected = f"http://{self.serve.host}:{self.serve.port}/v1"
            if self.api_base is None:
                self.api_base = expected
            elif self.api_base.rstrip("/") != expected:
                raise ValueError(f"api_base {self.api_base} does not match the server it serves ({expected})")
        return self


class EncoderTier(_Strict):
    """Sentence embeddings plus a linear head: milliseconds per item, for tasks with labelled data.
    Serves the newest artifact `cascade train` made for the task and label set; else a head fitted on
    frozen embeddings of `examples_file` and the task's example store, refitted in the background as
    escalations and reviews add examples."""

    kind: Literal["encoder"]
    name: str = Field(min_length=1)
    locality: Literal["local"] = Field(default="local", description="in-process: data never leaves the machine")
    examples_file: Path | None = Field(default=None, description="JSONL or CSV with text and label columns")
    base: str = Field(default="all-MiniLM-L6-v2", description="base encoder of the fitted head: all-MiniLM-L6-v2, "
                      "all-mpnet-base-v2 or a sentence-transformers directory (a trained artifact brings its own)")
    use_store: bool = Field(default=True, description="fit the head on the task's example store too, and refit it "
                            "as examples arrive")
    use_trained: bool = Field(default=True, description="serve the newest trained artifact for the task and labels")
    heads: dict[str, Path] = Field(default_factory=dict, description=(
        "task -> a head.npz fitted on `base`, served for that task and the head's own label list when no "
        "trained artifact exists; `bundled:NAME` is a head shipped with the package (bundled:fraud-sms)"))

    @field_validator("heads", mode="before")
    @classmethod
    def _bundled_heads(cls, heads: Any) -> Any:
        if not isinstance(heads, dict):
            return heads
        return {task: BUNDLED_HEADS / path.removeprefix("bundled:") / "head.npz"
                if isinstance(path, str) and path.startswith("bundled:") else path for task, path in heads.items()}
    c: float = Field(default=4.0, gt=0, description="inverse regularisation strength of the head")
    min_per_label: int = Field(default=2, ge=1, description="labels with fewer examples escalate")
    threads: int | None = Field(default=1, ge=1, description=(
        "torch threads of its embeddings (process-wide; None: torch's default, every core). With one, an "
        "item does not stall when other processes hold the cores (docs/benchmarks.md)"))


class ReaderTier(_Strict):
    """An extractive reader for ask and contract: an encoder with a span head trained on CPU
    (`cascade train-reader`), answering with a span of the passages, or cannot answer / no clause
    when no span beats its no-answer score. Other tasks escalate past it."""

    kind: Literal["reader"]
    name: str = Field(min_length=1)
    locality: Literal["local"] = Field(default="local", description="in-process: data never leaves the machine")
    artifacts: dict[Literal["ask", "contract"], str] = Field(
        default_factory=dict, description="task -> trained artifact id or folder (default: the task's newest "
        "reader artifact in the data dir)")
    null_margin: float = Field(default=0.0, description="a span must beat the no-answer score by this much")
    threads: int | None = Field(default=None, ge=1, description="torch threads (default: torch's)")


Tier = Annotated[LlamaCppTier | LitellmTier | EncoderTier | ReaderTier, Field(discriminator="kind")]


class ExampleSettings(_Strict):
    """Retrieved demonstrations for tier-1 prompts, and learning from escalations."""

    k: int = Field(default=4, ge=0, le=16, description="nearest labelled examples shown to the model (0: none)")
    order: Literal["nearest_last", "nearest_first"] = Field(
        default="nearest_last", description="where the most similar example goes: next to the item, or first")
    learn: bool = Field(default=True, description="store confident answers of higher tiers as new examples")
    learn_min_confidence: float = Field(default=0.9, ge=0.0, le=1.0,
                                        description="a higher tier's answer is learned at or above this confidence")
    learn_only_kept: bool = Field(default=False, description=(
        "learn a higher tier's answer only if it also reaches the threshold that tier held it to (its "
        "calibration artifact's, per label with a per-class artifact): what it would have kept, not merely "
        "answered as the last tier"))
    vote_weight: float = Field(default=0.0, ge=0.0, lt=1.0, description=(
        "share of a tier's label probabilities taken from the shown examples' similarity-weighted vote, "
        "balanced by the store's label shares (0: the model's alone); a calibration artifact is fitted "
        "for one weight"))


class PrivacySettings(_Strict):
    """What a task's items may do outside this machine. A call marked confidential is treated as
    external: forbid and keep_examples: false, whatever the task's settings."""

    external: Literal["redact", "forbid", "allow"] = Field(
        default="redact", description="redact: personal data is replaced by placeholders before an external tier "
        "sees the text (restored in the answer); forbid: never send to an external tier (the item ends in "
        "needs_review instead); allow: send as is")
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES),
                                description="entity types replaced before external escalation")
    keep_examples: bool = Field(default=True, description="the task's items may become stored examples")

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, entities: list[str]) -> list[str]:
        try:
            return validate_entities(entities)
        except ConfigError as exc:
            raise ValueError(exc.message) from None


class TaskSettings(_Strict):
    threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="accept a tier's answer at or above this confidence")
    class_thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, description="tasks with fixed labels: the threshold an answer of each listed label must "
        "reach instead (fraud default: legit 0.9, fraud 0.6); a calibration artifact with per-class thresholds "
        "replaces them, one with a single threshold never lowers them")
    review_below_threshold: list[str] = Field(
        default_factory=list, description="labels never kept below their threshold, not even by the last tier: the "
        "run goes to the review queue instead (fraud default: legit)")
    examples: ExampleSettings = ExampleSettings()
    privacy: PrivacySettings = PrivacySettings()
    support_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="ask: support score an answer needs against the passages it cites "
        "(the fitted combination in orchestrator/core/qa_support.yaml; default 0.5)")
    max_answer_tokens: int | None = Field(default=None, ge=8, description="ask: tokens a tier may generate (default 160)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASCADE_", extra="forbid")

    data_dir: Path = Path(user_data_dir("slm-cascade"))
    database_url: str | None = None
    qdrant_url: str | None = None  # a Qdrant server for the example store; default: local mode in the data dir
    tiers: list[Tier] = Field(min_length=1)
    tasks: dict[str, TaskSettings] = Field(default_factory=dict, validate_default=True)  # every known task, filled in
    # Batch jobs (orchestrator/jobs/runner.py, workers/).
    batch_mode: Literal["embedded", "distributed"] = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    batch_max_escalation_share: float = Field(default=1.0, ge=0.0, le=1.0)
    batch_max_spend: float | None = Field(default=None, ge=0.0)  # per job, in the tiers' price currency
    batch_max_file_mb: float = Field(default=64.0, gt=0)
    batch_max_row_kb: float = Field(default=256.0, gt=0)
    batch_max_retries: int = Field(default=4, ge=0)
    batch_retry_backoff_s: float = Field(default=2.0, ge=0)
    batch_storage_retries: int = Field(default=12, ge=0)
    batch_item_lease_s: float = Field(default=300.0, gt=0)
    batch_window: int = Field(default=32, ge=1)
    batch_sweep_interval_s: float = Field(default=1.0, gt=0)
    # The HTTP service (service/, `cascade serve`).
    service_host: str = "127.0.0.1"
    service_port: int = Field(default=8000, ge=0, le=65535)
    service_workers: int = Field(default=1, ge=1)
    service_max_body_kb: float = Field(default=2048.0, gt=0)
    service_rate_limit_per_min: int = Field(default=600, ge=0)
    service_webhook_max_tries: int = Field(default=5, ge=1)

    @field_validator("tiers")
    @classmethod
    def _unique_names(cls, tiers: list[Tier]) -> list[Tier]:
        names = [t.name for t in tiers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(dupes)}")
        return tiers

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: dict[str, TaskSettings]) -> dict[str, TaskSettings]:
        unknown = sorted(set(tasks) - set(KNOWN_TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known tasks: {list(KNOWN_TASKS)}")
        return {name: _with_defaults(name, tasks.get(name) or TaskSettings()) for name in KNOWN_TASKS}

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> "Settings":
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @property
    def audit_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'audit.db'}"

    def task(self, name: str) -> TaskSettings:
        return self.tasks[name]


def _with_defaults(name: str, settings: TaskSettings) -> TaskSettings:
    """The task's own defaults for the fields its config leaves out; per-label settings checked
    against the task's fixed label set."""
    unset = {k: v for k, v in TASK_DEFAULTS.get(name, {}).items() if k not in settings.model_fields_set}
    settings = TaskSettings.model_validate({**settings.model_dump(include=settings.model_fields_set), **unset})
    qa_only = {"support_threshold", "max_answer_tokens"} & settings.model_fields_set - set(unset)
    if name != "ask" and qa_only:
        raise ValueError(f"tasks.{name}: {sorted(qa_only)} apply to the ask task only")
    if name in ("ask", "contract") and settings.privacy.external == "redact":
        raise ValueError(f"tasks.{name}.privacy.external: redact is not available for document QA or contract "
                         "review (passages are not redacted); use forbid (default: external tiers are skipped) or allow")
    named = set(settings.class_thresholds) | set(settings.review_below_threshold)
    labels = TASKS[name].labels
    if named and labels is None:
        raise ValueError(f"tasks.{name}: class_thresholds and review_below_threshold need a fixed label set; "
                         f"{name} takes its labels per call")
    if unknown := sorted(named - set(labels or ())):
        raise ValueError(f"tasks.{name}: unknown label(s) {unknown} in class_thresholds or review_below_threshold; "
                         f"the labels are {list(labels)}")
    return settings


def protect_secrets(settings: Settings) -> None:
    """Mask the API keys this configuration can reach in every log line and error message."""
    secrets.register_environment()
    for tier in settings.tiers:
        if isinstance(tier, LitellmTier) and tier.api_key_env:
            secrets.register(os.environ.get(tier.api_key_env))
    secrets.install_log_scrubber()


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from explicit overrides, then the YAML file, then CASCADE_* variables."""
    path = Path(config_file or os.environ.get("CASCADE_CONFIG") or DEFAULT_CONFIG).expanduser()
    file_values = _read_yaml(path)
    merged = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = Settings(**merged)
        protect_secrets(settings)
        return settings
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {path}: {problems}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing YAML file or unset CASCADE_CONFIG")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping (tiers:, tasks:, ...), not {type(data).__name__}")
    return data
