"""The aiohttp front end: one client of the engine among others, through its facade."""
