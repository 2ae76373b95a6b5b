"""The API shows secret conf values as ``*********(redacted)``; the store keeps the real
value for the engine. Engine info, state messages, events and logs are all redacted."""

from __future__ import annotations

from pathlib import Path

from rucat.config import LocalPlatformConfig
from rucat.domain.redaction import REDACTED
from rucat.domain.state import EngineState as S
from rucat.platforms.local.platform import LocalPlatform
from tests.integration.conftest import Api, StartApi, force_state

SECRET = "wJalrXUtnFEMI-K7MDENG"
CONFIGS = {
    "spark.hadoop.fs.s3a.access.key": "AKIAIOSFODNN7EXAMPLE",
    "spark.hadoop.fs.s3a.secret.key": SECRET,
    "spark.executor.memory": "1g",
}


async def test_engine_info_shows_secret_confs_redacted_and_the_store_keeps_them(
    api: Api,
) -> None:
    engine_id = await api.create(configs=CONFIGS)
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert info["configs"] == {
        "spark.hadoop.fs.s3a.access.key": REDACTED,
        "spark.hadoop.fs.s3a.secret.key": REDACTED,
        "spark.executor.memory": "1g",
    }
    assert (await api.engine(engine_id)).configs == CONFIGS
    # Stop and restart answer engine info too.
    stopped = (await api.client.post(f"/engine/{engine_id}/stop")).text
    assert SECRET not in stopped and "AKIAIOSFODNN7EXAMPLE" not in stopped


async def test_messages_and_events_never_show_a_secret_value(api: Api) -> None:
    engine_id = await api.create(configs=CONFIGS)
    token = (await api.engine(engine_id)).connect_token
    leak = f"spark-submit failed: {SECRET} (spark.connect.authenticate.token={token})"
    await force_state(api.store, engine_id, S.ErrorClean, message=leak)
    info = (await api.client.get(f"/engine/{engine_id}")).json()
    assert (
        info["message"]
        == f"spark-submit failed: {REDACTED} (spark.connect.authenticate.token={REDACTED})"
    )
    events = (await api.client.get(f"/engine/{engine_id}/events")).json()
    assert events[-1]["message"] == info["message"]
    assert SECRET not in str(events) and str(token) not in str(events)


async def test_saved_and_live_logs_are_served_redacted(start_api: StartApi, tmp_path: Path) -> None:
    platform = LocalPlatform(LocalPlatformConfig(), data_dir=tmp_path / "data")
    try:
        async with start_api(platform=platform) as api:
            saved = await api.create(configs=CONFIGS)
            await force_state(
                api.store,
                saved,
                S.Terminated,
                saved_logs=f"spark.hadoop.fs.s3a.secret.key={SECRET}\n",
            )
            logs = (await api.client.get(f"/engine/{saved}/logs")).json()["logs"]
            assert logs == f"spark.hadoop.fs.s3a.secret.key={REDACTED}\n"

            live = await api.create(configs=CONFIGS)
            folder = tmp_path / "data" / "engines" / live
            folder.mkdir(parents=True)
            (folder / "engine.log").write_text(f"INFO user code printed {SECRET}\n")
            logs = (await api.client.get(f"/engine/{live}/logs")).json()["logs"]
            assert logs == f"INFO user code printed {REDACTED}\n"
    finally:
        await platform.close()
