"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DermedgeError(Exception):
    """A user-facing problem (bad path, bad CSV, missing extra) with a message naming the fix."""


def missing_extra(extra: str, module: str) -> DermedgeError:
    return DermedgeError(
        f"this command needs {module}, which comes with the [{extra}] extra: "
        f'pip install "dermedge[{extra}]"'
    )
