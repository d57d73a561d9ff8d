"""The aiohttp shell: turns the world into model events and model actions into I/O."""
