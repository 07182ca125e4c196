"""What is kept: assets with their AVL index and LRU cache of decoded audio, saved
chains, renders, API keys, which process owns what, and the database (``db``)."""
