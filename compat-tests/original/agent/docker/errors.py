"""Fake docker.errors."""


class DockerException(Exception):
    pass


class APIError(DockerException):
    pass


class NotFound(APIError):
    pass
