"""Tests of the image tag computed from the application repository's commit."""

import git
import pytest

from pipeline.revision import RevisionError, image_tag, open_repository, source_commit


@pytest.fixture
def repo(tmp_path):
    repository = git.Repo.init(tmp_path / "app", initial_branch="main")
    (tmp_path / "app" / "README").write_text("hello\n")
    (tmp_path / "app" / ".gitignore").write_text("ignored/\n")
    repository.index.add(["README", ".gitignore"])
    actor = git.Actor("test", "test@example.invalid")
    repository.index.commit("first", author=actor, committer=actor)
    return repository


def test_tag_is_eight_hex_of_head(repo):
    assert image_tag(repo.working_tree_dir, environ={}) == repo.head.commit.hexsha[:8]


def test_tag_prefers_ci_short_sha(repo):
    assert image_tag(repo.working_tree_dir, environ={"CI_COMMIT_SHORT_SHA": "0123abcd"}) == "0123abcd"


def test_all_digit_ci_sha_stays_text(repo):
    tag = image_tag(repo.working_tree_dir, environ={"CI_COMMIT_SHORT_SHA": "04651090"})
    assert tag == "04651090"
    assert isinstance(tag, str)


def test_invalid_ci_sha_is_rejected(repo):
    with pytest.raises(RevisionError) as raised:
        image_tag(repo.working_tree_dir, environ={"CI_COMMIT_SHORT_SHA": "latest"})
    assert "CI_COMMIT_SHORT_SHA is not a short commit hash: 'latest'" in str(raised.value)


def test_modified_file_marks_tag_dirty(tmp_path, repo):
    (tmp_path / "app" / "README").write_text("changed\n")
    assert image_tag(repo.working_tree_dir, environ={}) == repo.head.commit.hexsha[:8] + "-dirty"


def test_untracked_file_marks_tag_dirty(tmp_path, repo):
    (tmp_path / "app" / "new.txt").write_text("new\n")
    assert image_tag(repo.working_tree_dir, environ={}).endswith("-dirty")


def test_ignored_file_keeps_tag_clean(tmp_path, repo):
    (tmp_path / "app" / "ignored").mkdir()
    (tmp_path / "app" / "ignored" / "x").write_text("x\n")
    assert not image_tag(repo.working_tree_dir, environ={}).endswith("-dirty")


def test_subdirectory_finds_repository(tmp_path, repo):
    (tmp_path / "app" / "ignored").mkdir()
    assert image_tag(tmp_path / "app" / "ignored", environ={}) == repo.head.commit.hexsha[:8]


def test_not_a_repository_is_one_line(tmp_path):
    with pytest.raises(RevisionError) as raised:
        image_tag(tmp_path, environ={})
    assert str(raised.value).startswith(f"not a Git repository: {tmp_path}")


def test_not_a_repository_names_both_ci_variables(tmp_path):
    with pytest.raises(RevisionError) as raised:
        source_commit(tmp_path, environ={"CI_COMMIT_SHORT_SHA": "1234abcd"})
    assert str(raised.value) == (
        f"not a Git repository: {tmp_path}; run the task inside a clone, or set both CI_COMMIT_SHA and "
        "CI_COMMIT_SHORT_SHA (the commit's full hash and its first 8 characters)"
    )


def test_ci_variables_replace_repository(tmp_path):
    """The advice outside a clone holds: with both variables set, tag and commit need no repository."""
    environ = {"CI_COMMIT_SHA": "1234abcd" + "0" * 32, "CI_COMMIT_SHORT_SHA": "1234abcd"}
    assert image_tag(tmp_path, environ=environ) == "1234abcd"
    assert source_commit(tmp_path, environ=environ) == "1234abcd" + "0" * 32


def test_open_repository_advice_omits_ci_variables(tmp_path):
    with pytest.raises(RevisionError) as raised:
        open_repository(tmp_path)
    assert str(raised.value) == (
        f"not a Git repository: {tmp_path}; run the task inside a clone of the application repository"
    )


def test_repository_without_commit_is_reported(tmp_path):
    git.Repo.init(tmp_path / "empty")
    with pytest.raises(RevisionError) as raised:
        image_tag(tmp_path / "empty", environ={})
    assert "has no commit yet" in str(raised.value)


def test_source_commit_prefers_ci_sha(repo):
    assert source_commit(repo.working_tree_dir, environ={"CI_COMMIT_SHA": "f" * 40}) == "f" * 40
    assert source_commit(repo.working_tree_dir, environ={}) == repo.head.commit.hexsha
