"""The exceptions a script raises to tell windlass how its operation ended."""


class NonRecoverableError(Exception):
    """The operation failed and is not retried."""

    def __init__(self, *args, **kwargs):
        self.causes = kwargs.pop('causes', []) or []
        super().__init__(*args, **kwargs)


class RecoverableError(Exception):
    """The operation failed and is retried (up to its max_retries), after `retry_after`
    seconds when given, else after its retry interval."""

    def __init__(self, message='', retry_after=None, causes=None, **kwargs):
        if retry_after is not None:
            suffix = '[retry_after={0}]'.format(retry_after)
            if suffix not in message:
                message = '{0} {1}'.format(message, suffix)
        self.retry_after = retry_after
        self.causes = causes or []
        super().__init__(message, **kwargs)


class OperationRetry(RecoverableError):
    """The operation asked to run again (`ctx.operation.retry`)."""


class HttpException(NonRecoverableError):
    """A resource could not be read."""

    def __init__(self, url, code, message, causes=None, **kwargs):
        self.url = url
        self.code = code
        self.message = message
        super().__init__(str(self), causes=causes, **kwargs)

    def __str__(self):
        return '{0} ({1}) : {2}'.format(self.code, self.url, self.message)


class NotInContext(RuntimeError):
    """The package was used outside a windlass operation."""
