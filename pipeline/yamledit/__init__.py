"""Edit scalar values in YAML text in place, keeping every other byte of the file.

`pipeline.manifests` is the public surface. `documents`, `scalars`, `pairs`
and `diff` deal with YAML alone: loading with marks, node paths and anchors, and
writing a scalar in a style that YAML still reads as a string. `workloads`,
`kustomize` and `values` find the image values of each kind of target.
"""

from pipeline.errors import PipelineError


class ManifestError(PipelineError):
    """A manifest cannot be read, does not contain the target, or cannot be edited safely."""
