"""Tests of secret redaction applied to everything the tasks print or raise."""

from pipeline.redact import MASK, redact, secret_values


def test_url_credentials_are_masked():
    text = "fatal: unable to access 'https://oauth2:glpat-abcdef123456@gitlab.example.com/x.git/'"
    assert redact(text, environ={}) == f"fatal: unable to access 'https://{MASK}@gitlab.example.com/x.git/'"


def test_ssh_user_is_kept():
    text = "ssh://git@gitlab.example.com/platform/manifests.git"
    assert redact(text, environ={}) == text


def test_secret_variables_are_masked_anywhere():
    environ = {"CI_JOB_TOKEN": "job-token-value-123", "MY_API_TOKEN": "another-secret-9"}
    text = "header job-token-value-123 and another-secret-9"
    assert redact(text, environ=environ) == f"header {MASK} and {MASK}"


def test_short_values_are_not_masked():
    assert secret_values({"CI_JOB_TOKEN": "abc"}) == []


def test_extra_secrets_are_masked():
    assert redact("key=s3cr3t-value", extra=["s3cr3t-value"], environ={}) == f"key={MASK}"


def test_longest_secret_masked_first():
    environ = {"A_TOKEN": "secret-one", "B_TOKEN": "secret-one-two"}
    assert redact("secret-one-two", environ=environ) == MASK
