"""Check a manifests repository before Argo CD reads it.

`lint_manifests` runs four checks and collects every problem instead of
stopping at the first one:

1. every YAML file parses, with no duplicate mapping key;
2. every kustomization folder renders with kustomize;
3. every rendered object matches the Kubernetes JSON schemas of the
   `kubernetes-validate` package, strictly (unknown fields are errors);
4. every container image is a full reference (registry host, path, and a tag
   or digest) pinned to something other than the mutable tag `latest`, and
   the Argo CD objects carry the fields Argo CD requires.

A problem in a rendered object names the file that object comes from, found
through kustomize's origin annotations (`buildMetadata: [originAnnotations]`),
which are added to a temporary copy only.
"""

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import kube
from pipeline.errors import ConfigError, PipelineError

ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
ARGOCD_API_GROUP = "argoproj.io/"
_YAML_SUFFIXES = (".yaml", ".yml")
_KUBERNETES_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.\d+)?")

# A tag that the registry moves to each new image, so the cluster runs whatever was pushed last.
_MUTABLE_TAGS = ("latest",)

# Maximum length of a schema message quoted in a problem line, because a
# message that quotes a whole object can run to many lines.
_MAX_MESSAGE_LENGTH = 240

# Fields Argo CD needs before it accepts the object. Each entry lists
# alternatives, of which one must be present and non-empty, and a hint.
_ARGOCD_REQUIRED_FIELDS = {
    "Application": [
        (("metadata.name",), "name the Application"),
        (("spec.project",), "set the AppProject, or default"),
        (("spec.destination",), "set the cluster (server or name) and namespace to deploy to"),
        (("spec.destination.server", "spec.destination.name"), "set the cluster's API address or registered name"),
        (("spec.source", "spec.sources"), "set the manifests repository (repoURL, path, targetRevision)"),
    ],
    "ApplicationSet": [
        (("metadata.name",), "name the ApplicationSet"),
        (("spec.generators",), "add a generator, for example a list of environments"),
        (("spec.template",), "add the template of the Applications to generate"),
        (("spec.template.metadata.name",), "name the generated Applications"),
        (("spec.template.spec.project",), "set the AppProject, or default"),
        (("spec.template.spec.destination",), "set the cluster (server or name) and namespace to deploy to"),
        (
            ("spec.template.spec.destination.server", "spec.template.spec.destination.name"),
            "set the cluster's API address or registered name",
        ),
        (("spec.template.spec.source", "spec.template.spec.sources"), "set the manifests repository"),
    ],
    "AppProject": [
        (("metadata.name",), "name the AppProject"),
        (("spec.sourceRepos",), "list the repositories the project may deploy from"),
        (("spec.destinations",), "list the clusters and namespaces the project may deploy to"),
    ],
}


class LintError(PipelineError):
    """The manifests have problems; `inv lint` prints one line per problem before this one."""


@dataclass(frozen=True)
class Problem:
    """One finding: the file, the object and field it concerns, and what is wrong."""

    file: str
    message: str
    subject: str = ""
    field: str = ""

    def __str__(self) -> str:
        location = " ".join(part for part in (self.subject, self.field) if part)
        return f"{self.file}: {location}: {self.message}" if location else f"{self.file}: {self.message}"


@dataclass
class LintReport:
    """Findings of `lint_manifests`, and the checks it skipped."""

    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)
    objects_checked: int = 0

    def add(self, problem: Problem) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def skip(self, note: str) -> None:
        if note not in self.skipped:
            self.skipped.append(note)


@dataclass(frozen=True)
class _Document:
    path: Path
    content: dict


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping key written twice, but allows merge keys (<<)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is defined twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def lint_manifests(
    root: Path | str,
    *,
    kubernetes_version: str,
    require_tools: bool = False,
    shown_root: str | None = None,
) -> LintReport:
    """Check every file under root (a manifests repository) and return the problems found.

    kubernetes_version selects the schemas, such as "1.31". A missing tool
    (kustomize, the kubernetes-validate package) skips its check with a note,
    or is itself a problem when require_tools is true, as in CI.
    """
    root = Path(root)
    shown_root = shown_root or str(root)
    kubernetes_version = check_kubernetes_version(kubernetes_version)
    if root.is_file():
        raise ConfigError(
            f"manifests path {shown_root} is a file; give a folder, not a file, such as {Path(shown_root).parent}"
        )
    if not root.is_dir():
        raise ConfigError(f"manifests folder {shown_root} not found; pass --path or set lint.manifests")
    if not _yaml_files(root):
        raise ConfigError(
            f"no kustomization or manifests found in {shown_root}: it contains no .yaml or .yml file; "
            "pass --path with the folder of the manifests repository"
        )

    report = LintReport()
    documents, invalid_files = _load_documents(root, shown_root, report)
    _check_argocd_objects(documents, root, shown_root, report)
    if invalid_files:
        # kustomize would fail on the same files, once per overlay and without naming them.
        report.skip("rendering skipped until the files with invalid YAML are fixed")
        return report
    validator = _schema_validator(kubernetes_version, require_tools, shown_root, report)
    _check_rendered_objects(root, shown_root, validator, require_tools, report)
    return report


def check_kubernetes_version(version: str) -> str:
    """Return version as MAJOR.MINOR, or raise ConfigError when it is not one the installed schemas cover.

    kubernetes-validate compares versions as text and fails with an IndexError
    below its oldest schema, so the range is checked here with numbers.
    """
    matched = _KUBERNETES_VERSION.fullmatch(str(version).strip())
    supported = _supported_versions()
    if supported:
        oldest, newest = supported[0], supported[-1]
        fix = f"use one from {oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]}"
    else:
        fix = "use MAJOR.MINOR, such as 1.31"
    if matched is None:
        raise ConfigError(f"invalid Kubernetes version {version!r}; {fix}")
    major_minor = (int(matched.group(1)), int(matched.group(2)))
    if supported and not supported[0] <= major_minor <= supported[-1]:
        raise ConfigError(f"invalid Kubernetes version {version!r}; {fix}")
    return f"{major_minor[0]}.{major_minor[1]}"


def _supported_versions() -> list[tuple[int, int]]:
    """Return the (major, minor) versions that kubernetes-validate has schemas for, sorted; empty without it."""
    try:
        from kubernetes_validate.utils import all_versions
    except ImportError:
        return []
    versions = set()
    for text in all_versions():
        matched = _KUBERNETES_VERSION.match(text)
        if matched is not None:
            versions.add((int(matched.group(1)), int(matched.group(2))))
    return sorted(versions)


def _shown(path: Path, root: Path, shown_root: str) -> str:
    return f"{shown_root.rstrip('/')}/{path.relative_to(root).as_posix()}"


def _yaml_files(root: Path) -> list[Path]:
    files = [
        path
        for path in root.rglob("*")
        if path.suffix in _YAML_SUFFIXES and path.is_file() and ".git" not in path.relative_to(root).parts
    ]
    return sorted(files)


def _load_documents(root: Path, shown_root: str, report: LintReport) -> tuple[list[_Document], list[Path]]:
    """Parse every YAML file under root, and return the documents and the files that do not parse.

    Each file that does not parse is reported as a problem with its line.
    """
    documents, invalid_files = [], []
    for path in _yaml_files(root):
        try:
            contents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            reason = getattr(error, "problem", None) or str(error).splitlines()[0]
            report.add(Problem(_shown(path, root, shown_root), f"{where}invalid YAML: {reason}"))
            invalid_files.append(path)
            continue
        except (OSError, UnicodeDecodeError) as error:
            report.add(Problem(_shown(path, root, shown_root), f"cannot read the file: {error}"))
            invalid_files.append(path)
            continue
        documents.extend(_Document(path, content) for content in contents if isinstance(content, dict))
    return documents, invalid_files


# ---------------------------------------------------------------------------
# Argo CD objects


def _get(content: dict, dotted: str):
    value = content
    for key in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _subject(content: dict) -> str:
    name = _get(content, "metadata.name") or "(unnamed)"
    return f"{content.get('kind', '(no kind)')}/{name}"


def _check_argocd_objects(documents: list[_Document], root: Path, shown_root: str, report: LintReport) -> None:
    argocd = [doc for doc in documents if str(doc.content.get("apiVersion", "")).startswith(ARGOCD_API_GROUP)]
    projects = {
        _get(doc.content, "metadata.name"): doc.content for doc in argocd if doc.content.get("kind") == "AppProject"
    }
    for doc in argocd:
        file = _shown(doc.path, root, shown_root)
        kind = doc.content.get("kind")
        required = _ARGOCD_REQUIRED_FIELDS.get(kind)
        if required is None:
            report.add(Problem(file, f"unknown Argo CD kind {kind!r}; expected one of {', '.join(_ARGOCD_REQUIRED_FIELDS)}"))
            continue
        missing = _missing_fields(doc.content, required)
        for dotted, hint in missing:
            report.add(Problem(file, f"is missing; {hint}", _subject(doc.content), dotted))
        if missing:
            continue
        if kind == "Application":
            _check_application_spec(doc.content["spec"], "spec", [{}], doc, file, root, projects, report)
        elif kind == "ApplicationSet":
            elements = _list_generator_elements(doc.content["spec"]["generators"])
            _check_application_spec(
                doc.content["spec"]["template"]["spec"], "spec.template.spec", elements, doc, file, root, projects, report
            )


def _missing_fields(content: dict, required) -> list[tuple[str, str]]:
    """Return the required fields that are absent or empty, leaving out those below an absent parent."""
    missing = []
    for alternatives, hint in required:
        if any(alternative.startswith(f"{gone}.") for gone, _ in missing for alternative in alternatives):
            continue
        if not any(_get(content, alternative) not in (None, "", [], {}) for alternative in alternatives):
            missing.append((" or ".join(alternatives), hint))
    return missing


def _list_generator_elements(generators) -> list[dict]:
    """Return the elements of the list generators, which is what the template paths can be checked with."""
    elements = []
    for generator in generators if isinstance(generators, list) else []:
        listed = _get(generator, "list.elements") if isinstance(generator, dict) else None
        elements.extend(element for element in listed or [] if isinstance(element, dict))
    return elements or [{}]


def _expand(text: str, element: dict) -> str:
    """Fill in the ApplicationSet parameters {{.key}} (Go template) and {{key}} (the older syntax)."""
    for key, value in element.items():
        text = text.replace(f"{{{{.{key}}}}}", str(value)).replace(f"{{{{{key}}}}}", str(value))
    return text


def _check_application_spec(spec, prefix, elements, doc, file, root, projects, report) -> None:
    """Check an Application spec (or an ApplicationSet template) against its AppProject and this repository."""
    subject = _subject(doc.content)
    sources = spec.get("sources") or [spec.get("source")]
    project = projects.get(spec.get("project"))
    if spec.get("project") != "default" and project is None and projects:
        report.add(Problem(file, f"AppProject {spec.get('project')!r} is not defined in this repository", subject, f"{prefix}.project"))

    for index, source in enumerate(sources):
        where = f"{prefix}.sources[{index}]" if spec.get("sources") else f"{prefix}.source"
        if not isinstance(source, dict) or not source.get("repoURL"):
            report.add(Problem(file, "is missing; set the manifests repository's URL", subject, f"{where}.repoURL"))
            continue
        # A project without sourceRepos is reported on its own, so no comparison repeats that.
        repositories = _get(project or {}, "spec.sourceRepos") or []
        if repositories and "*" not in repositories and source["repoURL"] not in repositories:
            report.add(
                Problem(file, f"{source['repoURL']!r} is not in the sourceRepos of AppProject {spec['project']!r}", subject, f"{where}.repoURL")
            )
        path = source.get("path")
        if path is None or source.get("chart"):
            continue
        # NOTE: this assumes the Argo CD objects point at the repository they live in, as here.
        for element in elements:
            folder = _expand(str(path), element)
            if "{{" in folder:
                continue
            if not (root / folder).is_dir():
                report.add(Problem(file, f"folder {folder!r} does not exist in {root.name or root}", subject, f"{where}.path"))


# ---------------------------------------------------------------------------
# Rendered objects: schemas and images


def _schema_validator(kubernetes_version: str, require_tools: bool, shown_root: str, report: LintReport):
    """Return a function that validates one object, or None when kubernetes-validate is missing."""
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import VersionNotSupportedError
    except ImportError:
        note = "schema validation skipped: the kubernetes-validate package is not installed (pip install -e '.[tasks]')"
        if require_tools:
            report.add(Problem(shown_root, note.replace("skipped", "cannot run") + "; CI runs every check"))
        else:
            report.skip(note)
        return None

    def validate(content: dict):
        try:
            kubernetes_validate.validate(content, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            dotted = _dotted_path(error.path)
            return dotted, _one_line(error.message)
        except kubernetes_validate.SchemaNotFoundError:
            report.skip(
                f"no schema for {content.get('kind')} ({content.get('apiVersion')}) in kubernetes-validate; "
                "objects of that kind are not validated"
            )
        except VersionNotSupportedError:
            # check_kubernetes_version has checked the range already; this is kept for a changed package.
            raise ConfigError(
                f"Kubernetes version {kubernetes_version!r} is newer than the schemas of kubernetes-validate; "
                "set an older version or upgrade the package"
            ) from None
        return None

    return validate


def _dotted_path(path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= _MAX_MESSAGE_LENGTH else text[: _MAX_MESSAGE_LENGTH - 3] + "..."


def _check_rendered_objects(root: Path, shown_root: str, validator, require_tools: bool, report: LintReport) -> None:
    """Render every kustomization folder from a copy that records origins, then check each object."""
    if kube.kustomize_command() is None:
        note = "rendering skipped: neither kubectl nor kustomize is on PATH (install kubectl)"
        if require_tools:
            report.add(Problem(shown_root, note.replace("skipped", "cannot run") + "; CI runs every check"))
        else:
            report.skip(note)
        return

    with tempfile.TemporaryDirectory(prefix="kube-lint-") as scratch:
        copy = Path(scratch) / "manifests"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".git"))
        for directory in kube.kustomization_directories(copy):
            kustomization = _kustomization(directory)
            if kustomization is not None and kustomization.get("kind") == "Component":
                continue  # A component renders only as part of an overlay that uses it.
            if kustomization is not None:
                _record_origins(directory, kustomization)
            _check_directory(directory, copy, shown_root, validator, report)


def _kustomization(directory: Path) -> dict | None:
    for name in kube.KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            try:
                content = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):
                return None  # kustomize reports the same error when it renders the folder.
            return content if isinstance(content, dict) else None
    return None


def _record_origins(directory: Path, kustomization: dict) -> None:
    """Rewrite the copy's kustomization so that kustomize annotates each object with its source file."""
    metadata = kustomization.get("buildMetadata") or []
    if "originAnnotations" in metadata:
        return
    kustomization["buildMetadata"] = [*metadata, "originAnnotations"]
    for name in kube.KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            (directory / name).write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
            return


def _check_directory(directory: Path, copy: Path, shown_root: str, validator, report: LintReport) -> None:
    shown_directory = _shown(directory, copy, shown_root) if directory != copy else shown_root
    try:
        rendered = kube.render_directory(directory, shown_as=shown_directory)
    except kube.RenderError as error:
        report.add(Problem(f"{shown_directory}/kustomization.yaml", str(error).removeprefix(f"{shown_directory} ")))
        return
    report.rendered.append(shown_directory)

    images = _kustomization_images(directory)
    for index, entry in enumerate(images):
        if not entry.get("newTag") and not entry.get("digest"):
            report.add(Problem(
                f"{shown_directory}/kustomization.yaml",
                "sets no newTag or digest, so the tag written in the base is deployed; set newTag",
                "",
                f"images[{index}]",
            ))

    for content in yaml.safe_load_all(rendered):
        if not isinstance(content, dict):
            continue
        report.objects_checked += 1
        origin = _origin_file(content, directory, copy, shown_root)
        subject = _subject(content)
        if validator is not None:
            failure = validator(content)
            if failure is not None:
                dotted, message = failure
                report.add(Problem(origin, message, subject, dotted))
        for dotted, image in _container_images(content):
            reason = _image_problem(image)
            if reason is None:
                continue
            entry = _image_entry(image, images)
            if entry is not None:
                report.add(Problem(f"{shown_directory}/kustomization.yaml", f"{image!r} {reason}", "", f"images[{entry}]"))
            else:
                report.add(Problem(origin, f"{image!r} {reason}", subject, dotted))


def _origin_file(content: dict, directory: Path, copy: Path, shown_root: str) -> str:
    """Return the file an object was written in, from kustomize's origin annotation, with the annotation removed."""
    annotations = _get(content, "metadata.annotations") or {}
    origin_text = annotations.pop(ORIGIN_ANNOTATION, None)
    if not annotations and isinstance(content.get("metadata"), dict):
        content["metadata"].pop("annotations", None)
    origin = yaml.safe_load(origin_text) if origin_text else None
    relative = (origin or {}).get("path") or (origin or {}).get("configuredIn")
    if not relative:
        return _shown(directory, copy, shown_root) if directory != copy else shown_root
    source = (directory / relative).resolve()
    try:
        return _shown(source, copy.resolve(), shown_root)
    except ValueError:
        return str(relative)  # A resource from outside the repository, such as a remote base.


def _container_images(content, prefix: str = ""):
    """Yield (field path, image) for every container of every pod template in the object."""
    if isinstance(content, dict):
        for key, value in content.items():
            path = f"{prefix}.{key}" if prefix else key
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                for index, container in enumerate(value):
                    if isinstance(container, dict) and "image" in container:
                        yield f"{path}[{index}].image", container["image"]
            else:
                yield from _container_images(value, path)
    elif isinstance(content, list):
        for index, item in enumerate(content):
            yield from _container_images(item, f"{prefix}[{index}]")


def _image_problem(image) -> str | None:
    """Return why image is not a full reference (registry host, path, tag or digest), or None."""
    from pipeline.reference import InvalidReferenceError, parse_image_reference

    if not isinstance(image, str) or not image:
        return "is not an image reference; write REGISTRY/PATH:TAG"
    try:
        reference = parse_image_reference(image)
    except InvalidReferenceError as error:
        return f"is not a valid image reference ({error}); write REGISTRY/PATH:TAG"
    if reference.registry is None:
        return "has no registry host; write the full reference, such as registry.example.com/team/app:TAG"
    if not reference.tag and not reference.digest:
        return "has no tag or digest; pin the image with :TAG or @sha256:DIGEST"
    if reference.tag in _MUTABLE_TAGS and not reference.digest:
        return f"uses the mutable tag {reference.tag!r}; pin the image with a commit tag or @sha256:DIGEST"
    return None


def _kustomization_images(directory: Path) -> list[dict]:
    images = (_kustomization(directory) or {}).get("images") or []
    return [entry if isinstance(entry, dict) else {} for entry in images]


def _image_entry(image, entries: list[dict]) -> int | None:
    """Return the index of the kustomization images: entry that produced image, or None."""
    if not isinstance(image, str):
        return None
    repository = image.split("@", 1)[0]
    last_slash = repository.rfind("/")
    if repository.rfind(":") > last_slash:
        repository = repository[: repository.rfind(":")]
    for index, entry in enumerate(entries):
        if repository == (entry.get("newName") or entry.get("name")):
            return index
    return None
