"""The permission routes: an engine's owner and grants, read and replaced with manage."""

# No `from __future__ import annotations`: FastAPI must evaluate the route
# annotations, and `Depends(visible_engine(store, ...))` names a closure variable.

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from rucat.domain.access import EngineAction
from rucat.domain.engine import Engine
from rucat.server.actions import replace_grants
from rucat.server.auth import principal_of
from rucat.server.routes.engine_id import EngineIdPath, visible_engine
from rucat.server.routes.errors import ERRORS
from rucat.server.schemas import PermissionsBody, PermissionsOut
from rucat.store import EngineStore


def permission_router(*, store: EngineStore) -> APIRouter:
    router = APIRouter(tags=["permissions"], responses=ERRORS)

    @router.get("/engine/{engine_id}/permissions", response_model=PermissionsOut)
    async def get_permissions(
        engine: Annotated[Engine, Depends(visible_engine(store, EngineAction.PERMISSIONS))],
    ) -> PermissionsOut:
        """The engine's owner and grants. Needs manage."""
        return PermissionsOut.of(engine)

    @router.put("/engine/{engine_id}/permissions", response_model=PermissionsOut)
    async def put_permissions(
        engine_id: EngineIdPath, body: PermissionsBody, request: Request
    ) -> PermissionsOut:
        """Replace the engine's grants (the owner and admins always have manage).
        Needs manage."""
        # replace_grants decides access on the row it writes (compare-and-set).
        written = await replace_grants(
            store,
            engine_id=engine_id,
            grants=body.domain_grants(),
            principal=principal_of(request),
        )
        return PermissionsOut.of(written)

    return router
