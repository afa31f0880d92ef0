"""Keep credentials out of manifests, logs, reprs and error messages.

Anything the store writes or says about itself goes through :func:`redact` (text) or
:func:`redact_options` (storage options): URL user:password parts, signed-URL query
parameters, option keys that name secrets, and the values of the AWS credential environment
variables are replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["SECRET_ENV", "is_secret_option", "redact", "redact_options"]

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
              "AWS_ACCESS_KEY_ID", "MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY")

_SECRET_NAME = re.compile(r"(secret|token|passw|credential|session|access_key|private|"
                          r"signature|^key$|api_?key|auth)", re.IGNORECASE)
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s]+)@")
_SIGNED = re.compile(r"((?:X-Amz-(?:Credential|Signature|Security-Token)|AWSAccessKeyId|"
                     r"Signature|x-amz-security-token)=)[^&\s\"']+", re.IGNORECASE)
_INLINE = re.compile(r"((?:aws_)?(?:secret_access_key|session_token|access_key_id|secret|token|"
                     r"password)\s*[=:]\s*['\"]?)[^\s'\",}]+", re.IGNORECASE)


def is_secret_option(name: str) -> bool:
    """True for storage-option names that carry credentials (``key``, ``secret``, ``token``...)."""
    return bool(_SECRET_NAME.search(str(name)))


def redact(text: Any) -> str:
    """``text`` as a string with every credential we can recognise replaced by ``***``."""
    s = str(text)
    s = _USERINFO.sub(r"\1***@", s)
    s = _SIGNED.sub(r"\1***", s)
    s = _INLINE.sub(r"\1***", s)
    for name in SECRET_ENV:
        v = os.environ.get(name)
        if v and len(v) >= 8:  # short values would blank out ordinary words
            s = s.replace(v, "***")
    return s


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of storage options with secret-named entries removed and values redacted."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if is_secret_option(k):
            continue
        if isinstance(v, Mapping):
            out[k] = redact_options(v)
        elif isinstance(v, str):
            out[k] = redact(v)
        else:
            out[k] = v
    return out
