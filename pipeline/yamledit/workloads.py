"""Containers of Kubernetes workloads: find them, match them by image repository or name, and set their image."""

import yaml

from pipeline.reference import ImageReference
from pipeline.yamledit.documents import DocumentIndex, YamlFile, children, lookup, mapping_get, scalar_text
from pipeline.yamledit.edits import Candidate, parse_or_none, reject_shared, same_repository, scalar_edit

WORKLOAD_KINDS = {
    "Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
    "ReplicationController", "PodTemplate",
}
# Container list key -> the word used for it in change locations ("initContainer migrate").
CONTAINER_LISTS = {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}
# Mappings under these keys never hold a pod template, so the search skips them.
_NOT_POD_TEMPLATE_KEYS = {"metadata", "status", "selector", "resources", "securityContext", "affinity"}


def container_candidates(
    yaml_file: YamlFile, document: yaml.Node, image: ImageReference, match: ImageReference, container: str | None
) -> list[Candidate]:
    """Return the edits for the containers of a workload document whose image repository is match's.

    With `container`, the container of that name is set instead, whatever its image.
    """
    if scalar_text(mapping_get(document, "kind")) not in WORKLOAD_KINDS:
        return []
    candidates = []
    index = None
    for chain, list_key, position in containers(document):
        container_node = chain[-1][1]
        name = scalar_text(mapping_get(container_node, "name")) or f"{list_key}[{position}]"
        found = lookup(chain, "image")
        if found is None or not isinstance(found[-1][1], yaml.ScalarNode):
            continue
        old = found[-1][1].value
        old_reference = parse_or_none(old)
        matches = old_reference is not None and same_repository(old_reference, match)
        if (container is not None and name != container) or (container is None and not matches):
            continue

        index = index or DocumentIndex.for_document(yaml_file, document)
        location = f"{CONTAINER_LISTS[list_key]} {name}"
        reject_shared(yaml_file, index, found, location)
        # Keep the manifest's spelling of the repository (such as "nginx" for docker.io/library/nginx).
        keep_repository = old_reference is not None and same_repository(old_reference, image)
        new = str(old_reference.with_tag(image.tag, image.digest)) if keep_repository else str(image)
        edit = scalar_edit(yaml_file, found[-1][1], new, location)
        old_tag = old_reference.tag if old_reference else None
        candidates.append(Candidate(yaml_file, edit, old_tag))
    return candidates


def containers(document: yaml.Node):
    """Yield (chain to the container mapping, list key, index) for every container of a workload document.

    Pod templates sit at different depths (spec, spec.template.spec,
    spec.jobTemplate.spec.template.spec), so every mapping with a container
    list key is taken as a pod spec. Only mappings are searched, because no
    workload kind keeps its pod template inside a list.
    """
    stack = [[((), document)]]
    seen: set[int] = set()
    while stack:
        chain = stack.pop()
        path, node = chain[-1]
        if id(node) in seen or not isinstance(node, yaml.MappingNode):
            continue
        seen.add(id(node))
        descend = []
        for segment, child in children(node):
            if segment in CONTAINER_LISTS and isinstance(child, yaml.SequenceNode):
                list_chain = chain + [(path + (segment,), child)]
                for position, item in enumerate(child.value):
                    if isinstance(item, yaml.MappingNode):
                        yield list_chain + [(path + (segment, position), item)], segment, position
            elif isinstance(child, yaml.MappingNode) and segment not in _NOT_POD_TEMPLATE_KEYS:
                descend.append(chain + [(path + (segment,), child)])
        stack.extend(reversed(descend))
