"""Logic behind the invoke tasks: importable and testable without a shell."""
