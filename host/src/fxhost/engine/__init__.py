"""The engine: compiled chains, offline renders, render worker processes, live chains,
block deadlines, ring buffers and shared streams. It knows no HTTP and no database."""
