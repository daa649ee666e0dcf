"""The long-lived services one process holds, built once in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from retouch.billing.idempotency import IdempotencyStore
from retouch.billing.ledger import Ledger
from retouch.billing.pricing import Pricing
from retouch.config import Settings
from retouch.db.engine import create_db_engine, create_session_factory
from retouch.engines.base import BackgroundGenerator, Filler, Segmenter, Upscaler
from retouch.engines.diffusion import DiffusionInpainter
from retouch.engines.filler import create_filler
from retouch.engines.pose import PoseEstimator, create_pose_estimator
from retouch.engines.scenes import create_background_generator
from retouch.engines.segmenter import create_segmenter
from retouch.engines.text_encoder import MiniLmEncoder
from retouch.engines.tryon import TryOnEngine, create_try_on_engine
from retouch.engines.upscaler import create_upscaler
from retouch.executor import BoundedExecutor
from retouch.metrics import Metrics
from retouch.ratelimit import RateLimiter
from retouch.server_secrets import ServerKeys
from retouch.storage.base import PresigningStore, ResultStore
from retouch.storage.local import LocalResultStore
from retouch.storage.signing import UrlSigner, signed_result_url


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Engines:
    """The models of one process: loaded once, shared by every request thread."""

    segmenter: Segmenter
    upscaler: Upscaler
    backgrounds: BackgroundGenerator
    filler: Filler
    try_on: TryOnEngine
    pose: PoseEstimator

    @classmethod
    def load(cls, settings: Settings) -> Engines:
        threads = settings.inference_threads
        filler = create_filler(
            settings.filler,
            threads=threads,
            weights_path=settings.diffusion_weights,
            steps=settings.diffusion_steps,
        )
        backgrounds: BackgroundGenerator
        if settings.background_generator == "diffusion":
            # One pipeline in memory when both engines are generative.
            backgrounds = (
                filler
                if isinstance(filler, DiffusionInpainter)
                else DiffusionInpainter(
                    _weights(settings), threads=threads, steps=settings.diffusion_steps
                )
            )
        else:
            # The prompt encoder is loaded here, once per process, with the scene library's
            # phrases embedded at the same time.
            backgrounds = create_background_generator(
                settings.background_generator, encoder=MiniLmEncoder(threads=threads)
            )
        segmenter = create_segmenter(
            settings.segmenter,
            threads=threads,
            lone_threads=settings.lone_inference_threads or settings.cpu_threads,
            runtime=settings.segmenter_runtime,
            models_dir=settings.models_dir,
        )
        pose = create_pose_estimator(threads=threads)
        return cls(
            segmenter=segmenter,
            upscaler=create_upscaler(settings.upscaler, threads=threads),
            backgrounds=backgrounds,
            filler=filler,
            try_on=create_try_on_engine(
                settings.try_on_engine,
                segmenter=segmenter,
                pose=pose,
                threads=threads,
                weights_path=settings.diffusion_weights,
                steps=settings.diffusion_steps,
            ),
            pose=pose,
        )


def _result_store(settings: Settings) -> ResultStore:
    if settings.results_url is None:
        return LocalResultStore(settings.results_dir)
    # boto3 is the optional `s3` extra, imported only by deployments that choose S3.
    from retouch.storage.s3 import S3ResultStore

    return S3ResultStore(settings.results_url, endpoint_url=settings.s3_endpoint_url)


def _weights(settings: Settings) -> Path:
    if settings.diffusion_weights is None:
        raise ValueError("RETOUCH_DIFFUSION_WEIGHTS must name a local diffusers pipeline folder")
    return settings.diffusion_weights


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    ledger: Ledger
    idempotency: IdempotencyStore
    limiter: RateLimiter
    pricing: Pricing
    executor: BoundedExecutor
    results: ResultStore
    keys: ServerKeys
    engines: Engines
    metrics: Metrics
    # What "now" is for result expiry; tests move it forward instead of sleeping an hour.
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def create(cls, settings: Settings, *, engines: Engines | None = None) -> Services:
        """Build everything; ``engines`` lets tests share loaded models between apps."""
        engine = create_db_engine(settings.sqlalchemy_url)
        sessions = create_session_factory(engine)
        metrics = Metrics(multiprocess_dir=settings.metrics_dir)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            ledger=Ledger(
                sessions, reservation_ttl=timedelta(seconds=settings.reservation_ttl_seconds)
            ),
            idempotency=IdempotencyStore(
                sessions,
                ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
                lock_timeout=timedelta(seconds=settings.reservation_ttl_seconds),
            ),
            limiter=RateLimiter(
                settings.redis_url,
                prefix=settings.redis_prefix,
                fail_open=settings.rate_limit_fail_open,
            ),
            pricing=Pricing(settings),
            executor=BoundedExecutor(
                threads=settings.cpu_threads,
                max_pending=settings.max_pending_tasks,
                on_pending=metrics.queue_depth.set,
            ),
            results=_result_store(settings),
            keys=ServerKeys(settings, sessions),
            engines=engines or Engines.load(settings),
            metrics=metrics,
        )

    @property
    def signer(self) -> UrlSigner:
        """Signs and checks result URLs."""
        return UrlSigner(self.keys.get().result_urls)

    @property
    def webhook_master(self) -> bytes:
        """The key every account's webhook key is derived from."""
        return self.keys.get().webhooks

    def result_url(self, base: str, key: str) -> str:
        """Where a client downloads a stored result, for the next ``result_ttl_seconds``: this
        API under ``base`` (any node serves it), or the bucket itself when presigned."""
        ttl = self.settings.result_ttl_seconds
        if self.settings.result_urls == "presigned":
            # Settings refuse "presigned" without S3 results.
            assert isinstance(self.results, PresigningStore)
            return self.results.presigned_url(key, expires_in=ttl)
        expires_at = self.clock() + timedelta(seconds=ttl)
        return signed_result_url(base, key, signer=self.signer, expires_at=expires_at)

    def close(self) -> None:
        self.executor.shutdown()
        self.engine.dispose()
