"""Audio itself: files (read, write, output formats, resampling), the PCM wire format,
analysis and pictures. Knows no HTTP, no database, no chains."""
