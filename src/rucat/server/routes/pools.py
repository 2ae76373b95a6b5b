"""GET /pools: the warm pools, their profiles and idle engines (server/pools.py)."""

from fastapi import APIRouter

from rucat.server.pools import PoolDesk
from rucat.server.routes.errors import ERRORS
from rucat.server.schemas import PoolOut


def pool_router(desk: PoolDesk) -> APIRouter:
    """GET /pools over `desk`."""
    router = APIRouter(tags=["pools"], responses=ERRORS)

    @router.get("/pools", response_model=list[PoolOut])
    async def list_pools() -> list[PoolOut]:
        """The warm pools: profile, bounds, idle and starting engines, and this server's
        hand-outs and misses. Any authenticated caller."""
        return await desk.describe()

    return router
